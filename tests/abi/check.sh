#!/bin/sh
# ABI check: compare the built libscrm.so.1 with the committed baseline
# tests/abi/libscrm.abi (see README.md). Additions pass (the report is
# printed); removed or changed functions and variables fail.
#
#   check.sh SRCDIR BUILDDIR [SANITIZE]
#
# Two passes, because each view alone has a blind spot:
#  1. abidiff, public view (--headers-dir2 include/scrm and the generated
#     headers): only types defined in the public headers count, so private
#     handle layouts may change. Its status is a bit field: 1 error, 2 usage
#     error, 4 ABI change, 8 incompatible change (a symbol was removed).
#     8, 1 or 2 fail; 4 alone is re-checked with --no-added-syms, and passes
#     when nothing but additions remain.
#  2. signatures.py: the exported functions' calling signatures, with struct
#     types by name only. abidiff's public view cannot see a change between
#     two private (opaque) struct types, e.g. scrm_db * -> scrm_db_options *.
#
# Suppressions for pass 1 go in tests/abi/suppressions.abignore, each with
# a comment giving its reason.
#
# Exit 0 pass, 1 fail, 77 skip (no libabigail, sanitizer build, no DWARF).
set -u

srcdir=$1
builddir=$2
sanitize=${3:-none}
python=${PYTHON:-python3}
here=$srcdir/tests/abi
baseline=$here/libscrm.abi
lib=$builddir/lib/libscrm.so.1

if ! command -v abidiff >/dev/null 2>&1 || ! command -v abidw >/dev/null 2>&1; then
	echo "SKIP: abidiff/abidw (libabigail) are not installed"
	exit 77
fi
if [ "$sanitize" != none ]; then
	echo "SKIP: sanitizer build ($sanitize): instrumentation changes the binary"
	exit 77
fi
[ -f "$baseline" ] || { echo "FAIL: no baseline $baseline"; exit 1; }
[ -f "$lib" ] || { echo "FAIL: $lib was not built"; exit 1; }
if command -v readelf >/dev/null 2>&1 && ! readelf -S "$lib" | grep -q '\.debug_info'; then
	echo "SKIP: $lib has no DWARF debug info (build with -g, e.g. buildtype=debugoptimized)"
	exit 77
fi

headers="--exported-interfaces-only --headers-dir2 $srcdir/include/scrm --headers-dir2 $builddir/include/scrm"
suppr=
[ -f "$here/suppressions.abignore" ] && suppr="--suppressions $here/suppressions.abignore"
fail=0

echo "== pass 1: abidiff, public headers view"
# shellcheck disable=SC2086 # word lists
abidiff $suppr $headers "$baseline" "$lib"
rc=$?
if [ "$rc" -eq 0 ]; then
	echo "-- no ABI change"
elif [ $((rc & 3)) -ne 0 ]; then
	echo "FAIL: abidiff could not compare (status $rc)"
	fail=1
elif [ $((rc & 8)) -ne 0 ]; then
	echo "FAIL: incompatible ABI change (status $rc): an exported symbol was removed"
	fail=1
else
	# shellcheck disable=SC2086
	abidiff --no-added-syms $suppr $headers "$baseline" "$lib" >/dev/null
	rc2=$?
	if [ "$rc2" -eq 0 ]; then
		echo "-- compatible additions only (status $rc): refresh the baseline when the release is cut"
	else
		echo "FAIL: exported functions or variables changed (status $rc2)"
		fail=1
	fi
fi

echo "== pass 2: calling signatures"
tmp=$(mktemp "${TMPDIR:-/tmp}/scrm-abi-XXXXXX")
trap 'rm -f "$tmp"' EXIT INT TERM
if ! abidw --no-corpus-path --exported-interfaces-only --headers-dir "$srcdir/include/scrm" \
	--headers-dir "$builddir/include/scrm" "$lib" >"$tmp"; then
	echo "FAIL: abidw could not read $lib"
	fail=1
elif ! "$python" "$here/signatures.py" "$baseline" "$tmp"; then
	fail=1
fi

if [ "$fail" -ne 0 ]; then
	echo "ABI check FAILED against $baseline."
	echo "An incompatible change needs a new function (_v2) instead (CONVENTIONS.md)."
	exit 1
fi
echo "ABI check passed against $baseline"
