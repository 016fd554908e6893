#!/bin/sh
# Install test: install the build tree into a scratch DESTDIR, build
# examples/hello/hello.c against it with nothing but pkg-config, run it.
#
#   run.sh BUILDDIR SRCDIR VERSION SANITIZE [CC]
#
# Exit 0 pass, 1 fail, 77 skip (sanitizer build whose runtime cannot be
# linked into an outside program).
set -eu

builddir=$1
srcdir=$2
version=$3
sanitize=$4
cc=${5:-${CC:-cc}}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/scrm-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }

# --no-rebuild: meson test has already built the tree, and a rebuild from
# inside a running test would fight over the build directory's lock.
meson install -C "$builddir" --destdir "$tmp/root" --no-rebuild --quiet \
	|| fail "meson install into $tmp/root failed"

pc=$(find "$tmp/root" -name libscrm.pc | head -n 1)
[ -n "$pc" ] || fail "libscrm.pc was not installed"
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")

# What a user gets: the public headers (and nothing private), the library.
incdir=$(find "$tmp/root" -name scrm.h -path '*/include/scrm.h' | head -n 1)
[ -n "$incdir" ] || fail "include/scrm.h was not installed"
incdir=$(dirname "$incdir")
for h in scrm/version.h scrm/common.h scrm/db.h; do
	[ -f "$incdir/$h" ] || fail "$h was not installed"
done
priv=$(find "$tmp/root" -name '*-int.h' -o -name 'version.h.in' -o -name 'sqlite3.h')
[ -z "$priv" ] || fail "private headers installed: $priv"
[ -e "$libdir/libscrm.so.1" ] || fail "libscrm.so.1 is not in $libdir"
[ -L "$libdir/libscrm.so" ] || fail "libscrm.so (the dev symlink) is not in $libdir"

flags=$(PKG_CONFIG_SYSROOT_DIR="$tmp/root" PKG_CONFIG_PATH="$pcdir" \
	pkg-config --cflags --libs libscrm) || fail "pkg-config libscrm failed"
case "$flags" in
*"$tmp/root"*) ;;
*) fail "pkg-config flags do not point into the install: $flags" ;;
esac

extra=
if [ "$sanitize" != none ]; then
	# The library needs its sanitizer runtime; the program must load it first.
	extra="-fsanitize=$sanitize"
fi

# shellcheck disable=SC2086 # flags are a word list by design
if ! $cc -o "$tmp/hello" "$srcdir/examples/hello/hello.c" $extra $flags 2>"$tmp/cc.log"; then
	cat "$tmp/cc.log" >&2
	if [ "$sanitize" != none ] && grep -q -e asan -e ubsan -e sanitizer "$tmp/cc.log"; then
		echo "SKIP: cannot link the $sanitize runtime into an outside program"
		exit 77
	fi
	fail "compiling hello.c against the installed library failed ($cc $flags)"
fi

out=$(LD_LIBRARY_PATH="$libdir" "$tmp/hello") || fail "hello exited with $?: $out"
echo "$out"
echo "$out" | grep -q "^libscrm $version\$" || fail "hello did not print version $version"
echo "$out" | grep -q "^schema version [1-9]" || fail "hello did not print the schema version"

# It really ran with the installed copy, not something else on the system.
if command -v ldd >/dev/null 2>&1; then
	LD_LIBRARY_PATH="$libdir" ldd "$tmp/hello" | grep 'libscrm\.so\.1' | grep -q "$libdir" \
		|| fail "hello did not resolve libscrm.so.1 from $libdir"
fi
echo "PASS: installed libscrm $version builds and runs hello"
