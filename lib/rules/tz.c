/*
 * Time zones for local_hour(), day_of_week() and the rule engine: a built-in
 * table of IANA names with their current rules as POSIX TZ strings, fixed
 * offsets, and POSIX TZ rules themselves; offsets at an instant and local
 * wall time to UTC. Never reads the process TZ or the file system.
 */
#include <string.h>

#include "expr-int.h"

#define DAY_MS INT64_C(86400000)

/* Current rules only: each zone's POSIX TZ string as IANA tzdata 2025b
 * gives it for times after its last listed change (the footer of its TZif
 * file). Earlier rules (the US before 2007, Mexico's DST before 2022 …)
 * are not modelled. Sorted by name (bytewise) for the binary search, which
 * test_tz in check_expr.c checks. Zones whose rules POSIX cannot state
 * (Africa/Casablanca's Ramadan offsets, Asia/Gaza) are left out. */
#define Z(name, rule) {name, sizeof name - 1, rule}
static const struct tzname {
	const char *name;
	size_t len;
	const char *rule;
} zones[] = {
	Z("Africa/Abidjan", "GMT0"),
	Z("Africa/Accra", "GMT0"),
	Z("Africa/Addis_Ababa", "EAT-3"),
	Z("Africa/Algiers", "CET-1"),
	Z("Africa/Cairo", "EET-2EEST,M4.5.5/0,M10.5.4/24"),
	Z("Africa/Dakar", "GMT0"),
	Z("Africa/Dar_es_Salaam", "EAT-3"),
	Z("Africa/Harare", "CAT-2"),
	Z("Africa/Johannesburg", "SAST-2"),
	Z("Africa/Kampala", "EAT-3"),
	Z("Africa/Khartoum", "CAT-2"),
	Z("Africa/Kinshasa", "WAT-1"),
	Z("Africa/Lagos", "WAT-1"),
	Z("Africa/Luanda", "WAT-1"),
	Z("Africa/Lusaka", "CAT-2"),
	Z("Africa/Maputo", "CAT-2"),
	Z("Africa/Nairobi", "EAT-3"),
	Z("Africa/Tripoli", "EET-2"),
	Z("Africa/Tunis", "CET-1"),
	Z("Africa/Windhoek", "CAT-2"),
	Z("America/Adak", "HST10HDT,M3.2.0,M11.1.0"),
	Z("America/Anchorage", "AKST9AKDT,M3.2.0,M11.1.0"),
	Z("America/Argentina/Buenos_Aires", "<-03>3"),
	Z("America/Asuncion", "<-03>3"),
	Z("America/Bogota", "<-05>5"),
	Z("America/Boise", "MST7MDT,M3.2.0,M11.1.0"),
	Z("America/Cancun", "EST5"),
	Z("America/Caracas", "<-04>4"),
	Z("America/Chicago", "CST6CDT,M3.2.0,M11.1.0"),
	Z("America/Chihuahua", "CST6"),
	Z("America/Costa_Rica", "CST6"),
	Z("America/Denver", "MST7MDT,M3.2.0,M11.1.0"),
	Z("America/Detroit", "EST5EDT,M3.2.0,M11.1.0"),
	Z("America/Edmonton", "MST7MDT,M3.2.0,M11.1.0"),
	Z("America/El_Salvador", "CST6"),
	Z("America/Godthab", "<-02>2<-01>,M3.5.0/-1,M10.5.0/0"),
	Z("America/Guatemala", "CST6"),
	Z("America/Guayaquil", "<-05>5"),
	Z("America/Halifax", "AST4ADT,M3.2.0,M11.1.0"),
	Z("America/Havana", "CST5CDT,M3.2.0/0,M11.1.0/1"),
	Z("America/Hermosillo", "MST7"),
	Z("America/Indiana/Indianapolis", "EST5EDT,M3.2.0,M11.1.0"),
	Z("America/Indianapolis", "EST5EDT,M3.2.0,M11.1.0"),
	Z("America/Jamaica", "EST5"),
	Z("America/Juneau", "AKST9AKDT,M3.2.0,M11.1.0"),
	Z("America/Kentucky/Louisville", "EST5EDT,M3.2.0,M11.1.0"),
	Z("America/La_Paz", "<-04>4"),
	Z("America/Lima", "<-05>5"),
	Z("America/Los_Angeles", "PST8PDT,M3.2.0,M11.1.0"),
	Z("America/Managua", "CST6"),
	Z("America/Manaus", "<-04>4"),
	Z("America/Mazatlan", "MST7"),
	Z("America/Merida", "CST6"),
	Z("America/Mexico_City", "CST6"),
	Z("America/Monterrey", "CST6"),
	Z("America/Montevideo", "<-03>3"),
	Z("America/Montreal", "EST5EDT,M3.2.0,M11.1.0"),
	Z("America/Nassau", "EST5EDT,M3.2.0,M11.1.0"),
	Z("America/New_York", "EST5EDT,M3.2.0,M11.1.0"),
	Z("America/Nuuk", "<-02>2<-01>,M3.5.0/-1,M10.5.0/0"),
	Z("America/Panama", "EST5"),
	Z("America/Phoenix", "MST7"),
	Z("America/Puerto_Rico", "AST4"),
	Z("America/Regina", "CST6"),
	Z("America/Santiago", "<-04>4<-03>,M9.1.6/24,M4.1.6/24"),
	Z("America/Santo_Domingo", "AST4"),
	Z("America/Sao_Paulo", "<-03>3"),
	Z("America/St_Johns", "NST3:30NDT,M3.2.0,M11.1.0"),
	Z("America/Tegucigalpa", "CST6"),
	Z("America/Tijuana", "PST8PDT,M3.2.0,M11.1.0"),
	Z("America/Toronto", "EST5EDT,M3.2.0,M11.1.0"),
	Z("America/Vancouver", "PST8PDT,M3.2.0,M11.1.0"),
	Z("America/Winnipeg", "CST6CDT,M3.2.0,M11.1.0"),
	Z("Asia/Aden", "<+03>-3"),
	Z("Asia/Almaty", "<+05>-5"),
	Z("Asia/Amman", "<+03>-3"),
	Z("Asia/Baghdad", "<+03>-3"),
	Z("Asia/Bahrain", "<+03>-3"),
	Z("Asia/Baku", "<+04>-4"),
	Z("Asia/Bangkok", "<+07>-7"),
	Z("Asia/Beirut", "EET-2EEST,M3.5.0/0,M10.5.0/0"),
	Z("Asia/Bishkek", "<+06>-6"),
	Z("Asia/Brunei", "<+08>-8"),
	Z("Asia/Calcutta", "IST-5:30"),
	Z("Asia/Chongqing", "CST-8"),
	Z("Asia/Chungking", "CST-8"),
	Z("Asia/Colombo", "<+0530>-5:30"),
	Z("Asia/Dacca", "<+06>-6"),
	Z("Asia/Damascus", "<+03>-3"),
	Z("Asia/Dhaka", "<+06>-6"),
	Z("Asia/Dubai", "<+04>-4"),
	Z("Asia/Harbin", "CST-8"),
	Z("Asia/Ho_Chi_Minh", "<+07>-7"),
	Z("Asia/Hong_Kong", "HKT-8"),
	Z("Asia/Irkutsk", "<+08>-8"),
	Z("Asia/Jakarta", "WIB-7"),
	Z("Asia/Jayapura", "WIT-9"),
	Z("Asia/Jerusalem", "IST-2IDT,M3.4.4/26,M10.5.0"),
	Z("Asia/Kabul", "<+0430>-4:30"),
	Z("Asia/Kamchatka", "<+12>-12"),
	Z("Asia/Karachi", "PKT-5"),
	Z("Asia/Kathmandu", "<+0545>-5:45"),
	Z("Asia/Katmandu", "<+0545>-5:45"),
	Z("Asia/Kolkata", "IST-5:30"),
	Z("Asia/Krasnoyarsk", "<+07>-7"),
	Z("Asia/Kuala_Lumpur", "<+08>-8"),
	Z("Asia/Kuwait", "<+03>-3"),
	Z("Asia/Macao", "CST-8"),
	Z("Asia/Macau", "CST-8"),
	Z("Asia/Magadan", "<+11>-11"),
	Z("Asia/Makassar", "WITA-8"),
	Z("Asia/Manila", "PST-8"),
	Z("Asia/Muscat", "<+04>-4"),
	Z("Asia/Nicosia", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Asia/Novosibirsk", "<+07>-7"),
	Z("Asia/Omsk", "<+06>-6"),
	Z("Asia/Phnom_Penh", "<+07>-7"),
	Z("Asia/Pyongyang", "KST-9"),
	Z("Asia/Qatar", "<+03>-3"),
	Z("Asia/Rangoon", "<+0630>-6:30"),
	Z("Asia/Riyadh", "<+03>-3"),
	Z("Asia/Saigon", "<+07>-7"),
	Z("Asia/Seoul", "KST-9"),
	Z("Asia/Shanghai", "CST-8"),
	Z("Asia/Singapore", "<+08>-8"),
	Z("Asia/Taipei", "CST-8"),
	Z("Asia/Tashkent", "<+05>-5"),
	Z("Asia/Tbilisi", "<+04>-4"),
	Z("Asia/Tehran", "<+0330>-3:30"),
	Z("Asia/Tel_Aviv", "IST-2IDT,M3.4.4/26,M10.5.0"),
	Z("Asia/Thimphu", "<+06>-6"),
	Z("Asia/Tokyo", "JST-9"),
	Z("Asia/Ulaanbaatar", "<+08>-8"),
	Z("Asia/Urumqi", "<+06>-6"),
	Z("Asia/Vientiane", "<+07>-7"),
	Z("Asia/Vladivostok", "<+10>-10"),
	Z("Asia/Yakutsk", "<+09>-9"),
	Z("Asia/Yangon", "<+0630>-6:30"),
	Z("Asia/Yekaterinburg", "<+05>-5"),
	Z("Asia/Yerevan", "<+04>-4"),
	Z("Atlantic/Azores", "<-01>1<+00>,M3.5.0/0,M10.5.0/1"),
	Z("Atlantic/Bermuda", "AST4ADT,M3.2.0,M11.1.0"),
	Z("Atlantic/Canary", "WET0WEST,M3.5.0/1,M10.5.0"),
	Z("Atlantic/Madeira", "WET0WEST,M3.5.0/1,M10.5.0"),
	Z("Atlantic/Reykjavik", "GMT0"),
	Z("Australia/ACT", "AEST-10AEDT,M10.1.0,M4.1.0/3"),
	Z("Australia/Adelaide", "ACST-9:30ACDT,M10.1.0,M4.1.0/3"),
	Z("Australia/Brisbane", "AEST-10"),
	Z("Australia/Broken_Hill", "ACST-9:30ACDT,M10.1.0,M4.1.0/3"),
	Z("Australia/Canberra", "AEST-10AEDT,M10.1.0,M4.1.0/3"),
	Z("Australia/Darwin", "ACST-9:30"),
	Z("Australia/Hobart", "AEST-10AEDT,M10.1.0,M4.1.0/3"),
	Z("Australia/Lord_Howe", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0"),
	Z("Australia/Melbourne", "AEST-10AEDT,M10.1.0,M4.1.0/3"),
	Z("Australia/NSW", "AEST-10AEDT,M10.1.0,M4.1.0/3"),
	Z("Australia/North", "ACST-9:30"),
	Z("Australia/Perth", "AWST-8"),
	Z("Australia/Queensland", "AEST-10"),
	Z("Australia/South", "ACST-9:30ACDT,M10.1.0,M4.1.0/3"),
	Z("Australia/Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3"),
	Z("Australia/Tasmania", "AEST-10AEDT,M10.1.0,M4.1.0/3"),
	Z("Australia/Victoria", "AEST-10AEDT,M10.1.0,M4.1.0/3"),
	Z("Australia/West", "AWST-8"),
	Z("CET", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("CST6CDT", "CST6CDT,M3.2.0,M11.1.0"),
	Z("Canada/Atlantic", "AST4ADT,M3.2.0,M11.1.0"),
	Z("Canada/Central", "CST6CDT,M3.2.0,M11.1.0"),
	Z("Canada/Eastern", "EST5EDT,M3.2.0,M11.1.0"),
	Z("Canada/Mountain", "MST7MDT,M3.2.0,M11.1.0"),
	Z("Canada/Newfoundland", "NST3:30NDT,M3.2.0,M11.1.0"),
	Z("Canada/Pacific", "PST8PDT,M3.2.0,M11.1.0"),
	Z("EET", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("EST", "EST5"),
	Z("EST5EDT", "EST5EDT,M3.2.0,M11.1.0"),
	Z("Egypt", "EET-2EEST,M4.5.5/0,M10.5.4/24"),
	Z("Eire", "IST-1GMT0,M10.5.0,M3.5.0/1"),
	Z("Etc/GMT", "GMT0"),
	Z("Etc/UTC", "UTC0"),
	Z("Europe/Amsterdam", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Andorra", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Athens", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Belfast", "GMT0BST,M3.5.0/1,M10.5.0"),
	Z("Europe/Belgrade", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Bratislava", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Brussels", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Bucharest", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Budapest", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Chisinau", "EET-2EEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Copenhagen", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Dublin", "IST-1GMT0,M10.5.0,M3.5.0/1"),
	Z("Europe/Gibraltar", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Guernsey", "GMT0BST,M3.5.0/1,M10.5.0"),
	Z("Europe/Helsinki", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Isle_of_Man", "GMT0BST,M3.5.0/1,M10.5.0"),
	Z("Europe/Istanbul", "<+03>-3"),
	Z("Europe/Jersey", "GMT0BST,M3.5.0/1,M10.5.0"),
	Z("Europe/Kaliningrad", "EET-2"),
	Z("Europe/Kiev", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Kyiv", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Lisbon", "WET0WEST,M3.5.0/1,M10.5.0"),
	Z("Europe/Ljubljana", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/London", "GMT0BST,M3.5.0/1,M10.5.0"),
	Z("Europe/Luxembourg", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Madrid", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Malta", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Minsk", "<+03>-3"),
	Z("Europe/Monaco", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Moscow", "MSK-3"),
	Z("Europe/Nicosia", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Oslo", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Paris", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Podgorica", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Prague", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Riga", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Rome", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Samara", "<+04>-4"),
	Z("Europe/San_Marino", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Sarajevo", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Simferopol", "MSK-3"),
	Z("Europe/Skopje", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Sofia", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Stockholm", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Tallinn", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Tirane", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Vaduz", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Vatican", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Vienna", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Vilnius", "EET-2EEST,M3.5.0/3,M10.5.0/4"),
	Z("Europe/Volgograd", "MSK-3"),
	Z("Europe/Warsaw", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Zagreb", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Europe/Zurich", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("GB", "GMT0BST,M3.5.0/1,M10.5.0"),
	Z("GMT", "GMT0"),
	Z("HST", "HST10"),
	Z("Hongkong", "HKT-8"),
	Z("Iceland", "GMT0"),
	Z("Indian/Maldives", "<+05>-5"),
	Z("Indian/Mauritius", "<+04>-4"),
	Z("Iran", "<+0330>-3:30"),
	Z("Israel", "IST-2IDT,M3.4.4/26,M10.5.0"),
	Z("Japan", "JST-9"),
	Z("MET", "MET-1MEST,M3.5.0,M10.5.0/3"),
	Z("MST", "MST7"),
	Z("MST7MDT", "MST7MDT,M3.2.0,M11.1.0"),
	Z("NZ", "NZST-12NZDT,M9.5.0,M4.1.0/3"),
	Z("PRC", "CST-8"),
	Z("PST8PDT", "PST8PDT,M3.2.0,M11.1.0"),
	Z("Pacific/Apia", "<+13>-13"),
	Z("Pacific/Auckland", "NZST-12NZDT,M9.5.0,M4.1.0/3"),
	Z("Pacific/Chatham", "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45"),
	Z("Pacific/Easter", "<-06>6<-05>,M9.1.6/22,M4.1.6/22"),
	Z("Pacific/Fiji", "<+12>-12"),
	Z("Pacific/Guam", "ChST-10"),
	Z("Pacific/Honolulu", "HST10"),
	Z("Pacific/Kiritimati", "<+14>-14"),
	Z("Pacific/Norfolk", "<+11>-11<+12>,M10.1.0,M4.1.0/3"),
	Z("Pacific/Noumea", "<+11>-11"),
	Z("Pacific/Pago_Pago", "SST11"),
	Z("Pacific/Port_Moresby", "<+10>-10"),
	Z("Pacific/Tahiti", "<-10>10"),
	Z("Pacific/Tongatapu", "<+13>-13"),
	Z("Poland", "CET-1CEST,M3.5.0,M10.5.0/3"),
	Z("Portugal", "WET0WEST,M3.5.0/1,M10.5.0"),
	Z("ROC", "CST-8"),
	Z("ROK", "KST-9"),
	Z("Singapore", "<+08>-8"),
	Z("US/Alaska", "AKST9AKDT,M3.2.0,M11.1.0"),
	Z("US/Arizona", "MST7"),
	Z("US/Central", "CST6CDT,M3.2.0,M11.1.0"),
	Z("US/Eastern", "EST5EDT,M3.2.0,M11.1.0"),
	Z("US/Hawaii", "HST10"),
	Z("US/Mountain", "MST7MDT,M3.2.0,M11.1.0"),
	Z("US/Pacific", "PST8PDT,M3.2.0,M11.1.0"),
	Z("UTC", "UTC0"),
	Z("Universal", "UTC0"),
	Z("WET", "WET0WEST,M3.5.0/1,M10.5.0"),
};
#undef Z

/* ------------------------------------------------------------ parsing */

typedef struct {
	const char *p, *end;
} cur;

static bool more(const cur *c)
{
	return c->p < c->end;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool is_alpha(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
}

/* Up to `maxd` digits as a number in [lo, hi]. */
static bool num(cur *c, int maxd, int lo, int hi, int *out)
{
	int v = 0, k = 0;
	while (more(c) && is_digit(*c->p) && k < maxd) {
		v = v * 10 + (*c->p++ - '0');
		k++;
	}
	if (!k || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* hh[:mm[:ss]] with an optional sign, hours up to max_h, as seconds. */
static bool hms(cur *c, int max_h, int32_t *secs)
{
	int sign = 1, h, m = 0, s = 0;
	if (more(c) && (*c->p == '+' || *c->p == '-'))
		sign = *c->p++ == '-' ? -1 : 1;
	if (!num(c, 3, 0, max_h, &h))
		return false;
	if (more(c) && *c->p == ':') {
		c->p++;
		if (!num(c, 2, 0, 59, &m))
			return false;
		if (more(c) && *c->p == ':') {
			c->p++;
			if (!num(c, 2, 0, 59, &s))
				return false;
		}
	}
	*secs = sign * (h * 3600 + m * 60 + s);
	return true;
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits,
 * '+' and '-'. Its text is not kept. */
static bool abbr(cur *c)
{
	const char *s = c->p;
	if (more(c) && *c->p == '<') {
		c->p++;
		s = c->p;
		while (more(c) && (is_alpha(*c->p) || is_digit(*c->p) || *c->p == '+' || *c->p == '-'))
			c->p++;
		if (!more(c) || *c->p != '>' || c->p - s < 3)
			return false;
		c->p++;
		return true;
	}
	while (more(c) && is_alpha(*c->p))
		c->p++;
	return c->p - s >= 3;
}

/* ",Mm.w.d[/time]", ",Jn[/time]" or ",n[/time]"; 02:00 by default. */
static bool rule(cur *c, scrm_tzrule *r)
{
	int a, b, d;
	if (!more(c) || *c->p++ != ',' || !more(c))
		return false;
	memset(r, 0, sizeof *r);
	if (*c->p == 'M') {
		c->p++;
		if (!num(c, 2, 1, 12, &a) || !more(c) || *c->p++ != '.' || !num(c, 1, 1, 5, &b) ||
		    !more(c) || *c->p++ != '.' || !num(c, 1, 0, 6, &d))
			return false;
		r->kind = 'M';
		r->mon = (uint8_t)a;
		r->week = (uint8_t)b;
		r->wday = (uint8_t)d;
	} else if (*c->p == 'J') {
		c->p++;
		if (!num(c, 3, 1, 365, &a))
			return false;
		r->kind = 'J';
		r->yday = (int16_t)a;
	} else {
		if (!num(c, 3, 0, 365, &a))
			return false;
		r->kind = 'N';
		r->yday = (int16_t)a;
	}
	r->time = 2 * 3600;
	if (more(c) && *c->p == '/') {
		c->p++;
		/* RFC 8536's extension: -167..167 hours, as Asia/Jerusalem's 26:00. */
		if (!hms(c, 167, &r->time))
			return false;
	}
	return true;
}

/* "std offset dst [offset],start[/time],end[/time]". The rules are
 * required: a string without them, such as "UTC+8" (which POSIX reads as
 * eight hours *west* of UTC), is refused rather than guessed. With
 * `need_dst` false (the table's own strings) "CST-8" is a fixed zone. */
static bool posix(const char *s, size_t n, bool need_dst, scrm_tz *z)
{
	cur c = {s, s + n};
	int32_t off;
	memset(z, 0, sizeof *z);
	if (!abbr(&c) || !hms(&c, 24, &off))
		return false;
	z->std = -off; /* POSIX counts west of UTC */
	if (!more(&c))
		return !need_dst;
	if (!abbr(&c))
		return false;
	z->dst = z->std + 3600;
	if (more(&c) && *c.p != ',') {
		if (!hms(&c, 24, &off))
			return false;
		z->dst = -off;
	}
	if (!rule(&c, &z->on) || !rule(&c, &z->off) || more(&c))
		return false;
	z->has_dst = true;
	return true;
}

static int digits2(const char *s)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

static int name_cmp(const char *s, size_t n, const struct tzname *z)
{
	int r = memcmp(s, z->name, n < z->len ? n : z->len);
	return r ? r : n < z->len ? -1 : n > z->len;
}

void scrm__tz_fixed(scrm_tz *z, int32_t secs)
{
	memset(z, 0, sizeof *z);
	z->std = z->dst = secs;
}

bool scrm__tz_parse(const char *s, size_t n, scrm_tz *z)
{
	if (n == 1 && s[0] == 'Z') {
		scrm__tz_fixed(z, 0);
		return true;
	}
	if (n >= 3 && (s[0] == '+' || s[0] == '-')) {
		int h = digits2(s + 1), m = 0;
		if (h < 0)
			return false;
		if (n == 6 && s[3] == ':')
			m = digits2(s + 4);
		else if (n == 5)
			m = digits2(s + 3);
		else if (n != 3)
			return false;
		if (m < 0 || m > 59 || h * 60 + m > 18 * 60)
			return false;
		scrm__tz_fixed(z, (s[0] == '-' ? -1 : 1) * (h * 60 + m) * 60);
		return true;
	}
	size_t lo = 0, hi = SCRM_ARRAY_LEN(zones);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = name_cmp(s, n, &zones[mid]);
		if (r == 0)
			return posix(zones[mid].rule, strlen(zones[mid].rule), false, z);
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return n <= SCRM_TZ_POSIX_MAX && posix(s, n, true, z);
}

bool scrm__tz_table_sorted(void)
{
	scrm_tz z;
	for (size_t i = 0; i < SCRM_ARRAY_LEN(zones); i++) {
		if (i && name_cmp(zones[i].name, zones[i].len, &zones[i - 1]) <= 0)
			return false;
		if (!posix(zones[i].rule, strlen(zones[i].rule), false, &z))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------ offsets */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Day number (days since 1970-01-01) of the rule's date in year y. */
static int64_t rule_day(const scrm_tzrule *r, int64_t y)
{
	if (r->kind == 'J')
		return scrm__days_from_civil(y, 1, 1) + r->yday - 1 + (leap(y) && r->yday >= 60);
	if (r->kind == 'N')
		return scrm__days_from_civil(y, 1, 1) + r->yday;
	int64_t d1 = scrm__days_from_civil(y, r->mon, 1);
	int64_t dn = r->mon == 12 ? scrm__days_from_civil(y + 1, 1, 1)
				  : scrm__days_from_civil(y, r->mon + 1u, 1);
	int64_t wd1 = ((d1 + 4) % 7 + 7) % 7; /* 1970-01-01 was a Thursday; Sunday 0 */
	int64_t day = d1 + (r->wday - wd1 + 7) % 7 + (int64_t)(r->week - 1) * 7;
	while (day >= dn) /* week 5: the last such weekday */
		day -= 7;
	return day;
}

/* Year of a day number. */
static int64_t year_of(int64_t z)
{
	z += 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	return yoe + era * 400 + (mp >= 10);
}

/* Beyond ±2^50 ms (about 35000 years) the rules of the nearest such
 * instant apply: no overflow, same answer every time. */
#define TZ_CLAMP (INT64_C(1) << 50)

int64_t scrm__tz_offset(const scrm_tz *z, int64_t t)
{
	if (!z->has_dst)
		return (int64_t)z->std * 1000;
	if (t > TZ_CLAMP)
		t = TZ_CLAMP;
	else if (t < -TZ_CLAMP)
		t = -TZ_CLAMP;
	/* The last transition at or before t, among those of the year around
	 * t and its neighbours (a rule's time may push it across a year's
	 * end); each is stated in the local time in force before it. */
	int64_t y = year_of(floor_div(t + (int64_t)z->std * 1000, DAY_MS));
	int64_t best = INT64_MIN, first = INT64_MAX;
	bool dst = false, first_on = false;
	for (int64_t yy = y - 1; yy <= y + 1; yy++) {
		int64_t on = rule_day(&z->on, yy) * DAY_MS + ((int64_t)z->on.time - z->std) * 1000;
		int64_t off = rule_day(&z->off, yy) * DAY_MS + ((int64_t)z->off.time - z->dst) * 1000;
		/* >=: of two at the same instant the later one listed wins */
		if (on <= t && on >= best) {
			best = on;
			dst = true;
		}
		if (off <= t && off >= best) {
			best = off;
			dst = false;
		}
		if (on < first) {
			first = on;
			first_on = true;
		}
		if (off < first) {
			first = off;
			first_on = false;
		}
	}
	if (best == INT64_MIN) /* before every candidate: the state before the first */
		dst = !first_on;
	return (int64_t)(dst ? z->dst : z->std) * 1000;
}

int64_t scrm__tz_utc(const scrm_tz *z, int64_t local, bool later)
{
	if (!z->has_dst)
		return local - (int64_t)z->std * 1000;
	int64_t lo = (int64_t)(z->std < z->dst ? z->std : z->dst) * 1000;
	int64_t hi = (int64_t)(z->std < z->dst ? z->dst : z->std) * 1000;
	int64_t early = local - hi, late = local - lo;
	bool e_ok = scrm__tz_offset(z, early) == hi, l_ok = scrm__tz_offset(z, late) == lo;
	if (e_ok && l_ok) /* repeated wall time (the clocks went back) */
		return later ? late : early;
	if (e_ok)
		return early;
	/* valid only with the lower offset, or skipped (the clocks went
	 * forward): read with the offset in force before the jump, which lands
	 * the gap's length later */
	return late;
}
