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
#include "scrm/profile.h"
#include "scrm/rules.h"

#endif /* SCRM_H */
