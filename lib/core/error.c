/*
 * Result codes, their names, and the last-error slot of each handle (or of
 * the thread, for calls made without a handle).
 */
#include <stdio.h>
#include <string.h>

#include "core-int.h"
#include "db-int.h"

static _Thread_local int tls_code;
static _Thread_local char tls_msg[SCRM_ERRMSG_MAX];

int *scrm__tls_errcode(void) { return &tls_code; }
char *scrm__tls_errmsg(void) { return tls_msg; }

SCRM_API const char *scrm_errstr(int code)
{
	switch (code) {
	case SCRM_OK: return "not an error";
	case SCRM_ERROR: return "error";
	case SCRM_MISUSE: return "library misuse";
	case SCRM_INVALID: return "invalid argument";
	case SCRM_NOTFOUND: return "not found";
	case SCRM_EXISTS: return "already exists";
	case SCRM_CONFLICT: return "constraint or conflict";
	case SCRM_STATE: return "illegal state transition";
	case SCRM_BUSY: return "database is busy";
	case SCRM_NOMEM: return "out of memory";
	case SCRM_IO: return "I/O error";
	case SCRM_CORRUPT: return "database is corrupt";
	case SCRM_SCHEMA: return "unsupported schema version";
	case SCRM_RANGE: return "out of range";
	case SCRM_PARSE: return "parse error";
	case SCRM_READONLY: return "database is read-only";
	case SCRM_LIMIT: return "limit exceeded";
	case SCRM_EVAL: return "evaluation error";
	case SCRM_DUPLICATE: return "duplicate";
	default: return "unknown error";
	}
}

/* Messages quote user input and are cut at SCRM_ERRMSG_MAX: keep them
 * valid UTF-8 for hosts that decode them (Python, Lua, JSON logs). */
static void sanitize_utf8(char *m)
{
	unsigned char *p = (unsigned char *)m;
	while (*p) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		int len = *p < 0xC0 ? 0 : *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : *p < 0xF8 ? 4 : 0;
		int ok = len > 0;
		for (int i = 1; ok && i < len; i++)
			ok = (p[i] & 0xC0) == 0x80;
		if (ok && scrm__utf8_valid((const char *)p, (size_t)len)) {
			p += len;
		} else {
			*p++ = '?';
		}
	}
}

int scrm__verror(scrm_db *db, int code, const char *fmt, va_list ap)
{
	char *msg = db ? db->errmsg : tls_msg;
	if (db)
		db->errcode = code;
	else
		tls_code = code;
	if (fmt)
		vsnprintf(msg, SCRM_ERRMSG_MAX, fmt, ap);
	else
		snprintf(msg, SCRM_ERRMSG_MAX, "%s", scrm_errstr(code));
	sanitize_utf8(msg);
	if (db && code != SCRM_OK)
		scrm__log(db, SCRM_LOG_DEBUG, "error %d (%s): %s", code, scrm_errstr(code), msg);
	return code;
}

int scrm__error(scrm_db *db, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	scrm__verror(db, code, fmt, ap);
	va_end(ap);
	return code;
}

void scrm__clear_error(scrm_db *db)
{
	if (db) {
		db->errcode = SCRM_OK;
		db->errmsg[0] = '\0';
	} else {
		tls_code = SCRM_OK;
		tls_msg[0] = '\0';
	}
}

int scrm__map_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return SCRM_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return SCRM_BUSY;
	case SQLITE_NOMEM: return SCRM_NOMEM;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_FULL:
	case SQLITE_PROTOCOL: return SCRM_IO;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return SCRM_CORRUPT;
	case SQLITE_CONSTRAINT: return SCRM_CONFLICT;
	case SQLITE_READONLY: return SCRM_READONLY;
	case SQLITE_TOOBIG: return SCRM_LIMIT;
	case SQLITE_RANGE:
	case SQLITE_MISMATCH: return SCRM_RANGE;
	case SQLITE_MISUSE: return SCRM_MISUSE;
	default: return SCRM_ERROR;
	}
}

int scrm__sqlerr(scrm_db *db, int rc, const char *what)
{
	const char *detail = db && db->sq ? sqlite3_errmsg(db->sq) : sqlite3_errstr(rc);
	return scrm__error(db, scrm__map_sqlite(rc), "%s: %s", what, detail);
}

SCRM_API const char *scrm_errmsg(const scrm_db *db)
{
	const char *msg = db ? db->errmsg : tls_msg;
	int code = db ? db->errcode : tls_code;
	if (code == SCRM_OK)
		return "not an error";
	return msg[0] ? msg : scrm_errstr(code);
}

SCRM_API int scrm_errcode(const scrm_db *db)
{
	return db ? db->errcode : tls_code;
}
