/*
 * libscrm — common definitions shared by every engine: result codes,
 * error strings, memory release, version and the export macro.
 */
#ifndef SCRM_COMMON_H
#define SCRM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "scrm/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @file scrm/common.h
 *  @brief Result codes, error strings, memory release and version.
 */

#if defined(SCRM_STATIC)
#  define SCRM_API
#elif defined(_WIN32)
#  if defined(SCRM_BUILDING)
#    define SCRM_API __declspec(dllexport)
#  else
#    define SCRM_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define SCRM_API __attribute__((visibility("default")))
#else
#  define SCRM_API
#endif

/**
 * @defgroup results Result codes
 * Every public function that can fail returns one of these. Values are
 * part of the ABI: they are never renumbered; new codes may be added.
 * @{
 */
#define SCRM_OK          0  /**< Success. */
#define SCRM_ERROR       1  /**< Generic error (see scrm_errmsg()). */
#define SCRM_MISUSE      2  /**< API used wrongly: NULL handle, closed handle, bad nesting. */
#define SCRM_INVALID     3  /**< An argument is invalid (bad value, bad UTF-8, unknown field). */
#define SCRM_NOTFOUND    4  /**< The named object does not exist. */
#define SCRM_EXISTS      5  /**< The object already exists. */
#define SCRM_CONFLICT    6  /**< A constraint or conflict prevents the change. */
#define SCRM_STATE       7  /**< Illegal state transition. */
#define SCRM_BUSY        8  /**< The database is locked by another connection (busy timeout ran out). */
#define SCRM_NOMEM       9  /**< Out of memory. */
#define SCRM_IO         10  /**< I/O error, or the file cannot be opened. */
#define SCRM_CORRUPT    11  /**< The database file is corrupt or is not a libscrm database. */
#define SCRM_SCHEMA     12  /**< The file was written by a newer schema than this library knows. */
#define SCRM_RANGE      13  /**< A number is out of range, or arithmetic overflowed. */
#define SCRM_PARSE      14  /**< Malformed input text (JSON, expression); the message has the position. */
#define SCRM_READONLY   15  /**< Write attempted on a handle opened read-only. */
#define SCRM_LIMIT      16  /**< A configured limit (size, depth, cost, count) was exceeded. */
#define SCRM_EVAL       17  /**< An expression could not be evaluated (type mismatch, division by zero). */
#define SCRM_DUPLICATE  18  /**< Input was already recorded (idempotency key seen); nothing changed. */
/** @} */

/**
 * Static English name of a result code, e.g. "not found".
 * Never NULL; unknown codes give "unknown error".
 */
SCRM_API const char *scrm_errstr(int code);

/**
 * Release memory handed out by libscrm (strings and buffers returned
 * through `**out` parameters). NULL is a no-op. Never use plain free().
 */
SCRM_API void scrm_free(void *p);

/** Version string of the library at run time, e.g. "0.1.0". */
SCRM_API const char *scrm_version(void);

/** Version number at run time: MAJOR*10000 + MINOR*100 + PATCH. */
SCRM_API int scrm_version_number(void);

#ifdef __cplusplus
}
#endif

#endif /* SCRM_COMMON_H */
