/*
 * libscrm — umbrella header: the Social-CRM core of an omnichannel retail
 * business, as an embeddable C library backed by one SQLite file.
 */
#ifndef SCRM_H
#define SCRM_H

#include "scrm/version.h"
#include "scrm/common.h"
#include "scrm/db.h"
#include "scrm/identity.h"

#endif /* SCRM_H */
