#!/bin/sh
# libscrm in two minutes: load a few days of one shop's channel records
# (WeCom, Tmall, Douyin, POS, Youzan, a mini-program) into a fresh ./scrm.db
# and watch them become customers; then record their orders, a refund and
# page views, and look at one shopper's profile and RFM scores; finally let
# rules act on new events: a thank-you coupon, a cart reminder fired by time,
# the outbox of actions for the shop's systems, the decision trace, segments.
#
#   ninja -C build && examples/demo.sh
#
# SCRM_EXE names the scrm binary (default: build/examples/scrm/scrm).
# The sample data is tests/data/demo/observations.jsonl: one JSON observation
# per line. Some lines are junk on purpose (blocked values such as "null" and
# "00000000000", a card number of the wrong shape, a line cut short), and two
# people share a phone, so the output also shows rejections and conflicts.
# tests/data/demo/events.jsonl holds one JSON event per line, naming the
# shoppers by the same identifiers; one line is a POS resend (a duplicate)
# and one a refund larger than its order (rejected). tests/data/demo/tags.json
# defines a rule tag and a manual tag, tests/data/demo/rules.json two rules.

set -u

SCRM=${SCRM_EXE:-build/examples/scrm/scrm}
data=$(cd "$(dirname "$0")/../tests/data/demo" && pwd) || exit 1
# Shorter names in messages when run from the top of the tree, as the README does.
[ "$data" = "$(pwd)/tests/data/demo" ] && data=tests/data/demo
failed=0

# The demo works on ./scrm.db, whatever the caller's environment says.
unset SCRM_DB

step() {
	printf '\n==> %s\n' "$*"
}

# Run an identity step; note a failure but go on so the rest still shows.
try() {
	"$@" || { failed=$((failed + 1)); echo "demo: this step failed (see the message above)" >&2; }
}

if [ ! -x "$SCRM" ]; then
	echo "demo: no scrm binary at '$SCRM'; build with 'ninja -C build' or set SCRM_EXE" >&2
	exit 1
fi

step "Start afresh: remove ./scrm.db and create it (scrm init)"
rm -f scrm.db scrm.db-wal scrm.db-shm
"$SCRM" init || exit 1

step "Teach it our POS member cards: 'M' + 8 digits (scrm kinds set --file kinds.json)"
try "$SCRM" kinds set --file "$data/kinds.json"

step "The identifier kinds it knows (scrm kinds list)"
try "$SCRM" kinds list

step "Load 40 channel records (scrm observe --file observations.jsonl)"
try "$SCRM" observe --file "$data/observations.jsonl"

step "What is in the file now (scrm info)"
"$SCRM" info || exit 1

step "Who is the Tmall buyer '小明爱购物'? (scrm resolve tmall_buyer_nick 小明爱购物)"
id=$("$SCRM" resolve tmall_buyer_nick '小明爱购物') || id=
if [ -n "$id" ]; then
	echo "customer $id"

	step "The same person by the phone on the POS receipt (scrm resolve phone '+86 138 0013 8000')"
	try "$SCRM" resolve phone '+86 138 0013 8000'

	step "Everything we know of customer $id (scrm customer show $id)"
	try "$SCRM" customer show "$id"

	step "How the records were linked, as Graphviz (scrm customer explain $id --dot | dot -Tsvg > $id.svg)"
	try "$SCRM" customer explain "$id" --dot
else
	failed=$((failed + 1))
	echo "demo: could not resolve the shopper; skipping 'customer show' and 'explain'" >&2
fi

step "Load 16 orders, refunds and page views (scrm import events events.jsonl)"
try "$SCRM" import events "$data/events.jsonl"

if [ -n "$id" ]; then
	step "Note what the shop knows and the consent given in WeCom (scrm profile set, scrm consent)"
	try "$SCRM" profile set "$id" name=王小明 birthday=1990-05-01 tz=Asia/Shanghai
	try "$SCRM" consent "$id" marketing grant --source wecom --at 2026-01-03T10:16:00+08:00

	step "Customer $id's events, newest first (scrm event list $id)"
	try "$SCRM" event list "$id"
fi

step "RFM scores and lifecycle stages as of the end of January (scrm rfm refresh --now 2026-02-01)"
try "$SCRM" rfm refresh --now 2026-02-01T00:00:00+08:00

if [ -n "$id" ]; then
	step "The profile of customer $id, identifiers masked (scrm profile show $id)"
	try "$SCRM" profile show "$id"
fi

step "A rule tag (net spend >= 400.00 CNY) and a manual tag (scrm tags define --file tags.json; scrm tags refresh)"
try "$SCRM" tags define --file "$data/tags.json"
try "$SCRM" tags refresh

step "At most 3 marketing actions a week per customer; load two rules (scrm rules config, scrm rules load rules.json)"
try "$SCRM" rules config '{"groups":{"marketing":{"max":3,"per":"7d"}}}' >/dev/null
try "$SCRM" rules load "$data/rules.json"
try "$SCRM" rules list

if [ -n "$id" ]; then
	step "Customer $id orders again, then leaves a tea in the cart (scrm event add)"
	try "$SCRM" event add '{"key":"MP-0130-0001","type":"order","channel":"miniprogram","at":"2026-01-30T12:00:00+08:00","customer":'"$id"',"amount":16800,"currency":"CNY"}'
	try "$SCRM" event add '{"key":"MP-C-0001","type":"cart_add","channel":"miniprogram","at":"2026-01-30T12:05:00+08:00","customer":'"$id"',"props":{"sku":"TEA-PUER-357"}}'

	step "Three days later the cart is still not ordered (scrm tick --now 2026-02-03)"
	try "$SCRM" tick --now 2026-02-03T00:00:00+08:00

	step "The shop's systems take the actions the rules decided (scrm outbox take)"
	taken=$("$SCRM" outbox take) || { taken=; failed=$((failed + 1)); }
	printf '%s\n' "$taken"

	step "... perform them, and acknowledge each (scrm outbox ack ID...)"
	ids=$(printf '%s\n' "$taken" | sed -n 's/^#\([0-9][0-9]*\) .*/\1/p')
	if [ -n "$ids" ]; then
		# shellcheck disable=SC2086 # one argument per id
		try "$SCRM" outbox ack $ids
	else
		failed=$((failed + 1))
		echo "demo: no action was taken from the outbox" >&2
	fi

	step "Why customer $id got them: the decision trace (scrm trace customer $id)"
	try "$SCRM" trace customer "$id"

	step "Customer $id's tags, with who or which rule gave them (scrm tags show $id)"
	try "$SCRM" tags show "$id"
fi

step "A segment: big spenders who ordered at least twice (scrm segment count / export)"
segment='has_tag("big_spender") && profile.figures.orders >= 2'
try "$SCRM" segment count "$segment"
try "$SCRM" segment export "$segment"

if [ "$failed" -gt 0 ]; then
	printf '\ndemo: %d step(s) failed\n' "$failed" >&2
	exit 1
fi
printf '\nDone. Try: %s customer explain %s | less, %s profile show %s --unmasked, or %s --help\n' \
	"$SCRM" "${id:-1}" "$SCRM" "${id:-1}" "$SCRM"
