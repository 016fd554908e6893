-- Rule engine surfaces of the Lua binding, against include/scrm/rules.h:
-- compiled expressions, rules and versions, the outbox (take/ack/fail/retry,
-- the iterator, the delivery function), tick, trace, tags and segments.
local H = require "harness"
local scrm = require "scrm"
local test, eq = H.test, H.eq

local T0 = 1767571200000 -- 2026-01-05T00:00:00Z, a Monday (08:00 in Shanghai)
local HOUR = 3600000
local now = T0

local function fresh()
  now = T0
  return scrm.open(H.tmpname(), {clock = function() return now end})
end

local seq = 0
local function event(db, type, customer, more)
  seq = seq + 1
  local ev = {key = "k" .. seq, type = type, channel = "pos", at = now, customer = customer}
  for k, v in pairs(more or {}) do ev[k] = v end
  local _, id = db:event_add(ev)
  return id
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function states(db)
  local out = {}
  for _, a in ipairs(db:outbox_list()) do out[#out + 1] = a.id .. "=" .. a.state end
  table.sort(out)
  return table.concat(out, ",")
end

-- A rule sending a host action for every order (condition on the amount).
local order_rule = {
  id = "thanks", name = "Thank big orders",
  trigger = {type = "event", event = "order"},
  condition = "event.amount >= 10000",
  actions = {{type = "send_thanks", params = {text = "thank you"}}},
}

------------------------------------------------------------------ expressions

test("expr: compile once, evaluate with typed and JSON bindings", function()
  local e = scrm.expr('event.amount >= 10000 && profile.level == "gold"')
  local vars = e:vars()
  eq(#vars, 2); eq(vars[1], "event.amount"); eq(vars[2], "profile.level")
  eq(e:test{["event.amount"] = 12000, ["profile.level"] = "gold"}, true)
  eq(e:test{["event.amount"] = 9999, ["profile.level"] = "gold"}, false)
  -- tables are bound as JSON at their path
  eq(e:test{event = {amount = 12000, props = {sku = "A1"}}, profile = {level = "gold"}}, true)
  -- a scalar at a deeper path wins over the table at a shorter one
  eq(e:test{event = {amount = 1}, ["event.amount"] = 10000, ["profile.level"] = "gold"}, true)
  eq(e:eval{["event.amount"] = 12000, ["profile.level"] = "gold"}, true)
  -- bindings do not carry over from one evaluation to the next
  eq(e:eval{}, false, "missing amount: null && false")
  eq(e:eval({["event.amount"] = 20000}), false, "missing == \"gold\" is false")
  eq(scrm.expr("a > 1 && b > 1"):eval{a = 5}, scrm.null)
  eq(tostring(e), "scrm.expr (2 paths)")
  local v = scrm.expr('[x + 1, lower(s), b, n]'):eval{x = 41, s = "ABC", b = true, n = scrm.null}
  eq(v[1], 42); eq(v[2], "abc"); eq(v[3], true); eq(v[4], scrm.null)
  eq(scrm.expr("x"):eval{x = 7.0}, 7, "an integral float binds as an integer")
  eq(scrm.expr('"中" + s'):eval{s = "文"}, "中文")
  eq(scrm.expr("len(xs)"):eval{xs = {1, 2, 3}}, 3, "an array binds as a list")
  eq(scrm.expr("has(a.b)"):eval{["a.b"] = scrm.null}, true)
  eq(scrm.expr("has(a.b)"):eval{}, false)
  eq(scrm.expr("1 + 2"):eval(), 3, "no bindings at all")
  H.contains(H.raises(e.test, e, {["event.amount"] = 1.5}), "not an integer")
  H.contains(H.raises(e.test, e, {["event.amount"] = print}), "is a function")
  H.contains(H.raises(e.test, e, {[1] = 2}), "keys must be path strings")
end)

test("expr: null rules", function()
  local function ev(src, b) return scrm.expr(src):eval(b or {}) end
  eq(ev("missing == null"), true)
  eq(ev("1 == null"), false)
  eq(ev("x > 1"), scrm.null)
  eq(ev("x / 0"), scrm.null, "null / 0 is null, not an error")
  eq(ev("!x"), scrm.null)
  eq(ev("x && false"), false)
  eq(ev("x && true"), scrm.null)
  eq(ev("x || true"), true)
  eq(ev("x ?? 5"), 5)
  eq(ev("x ? 1 : 2"), scrm.null)
  eq(ev("null in [null]"), true)
  -- a condition holds only when exactly true
  local e = scrm.expr("x > 1")
  eq(e:test{}, false)
  eq(e:test{x = 2}, true)
  eq(scrm.expr("x"):test{x = 1}, false, "1 is not true")
end)

test("expr: compile and evaluation errors carry L:C and the code", function()
  local err = H.raises_code(scrm.PARSE, scrm.expr, "a >\n  && b")
  eq(getmetatable(err), scrm.error_mt)
  H.contains(err.message, "2:3:")
  eq(err.line, 2); eq(err.column, 3)
  H.raises_code(scrm.PARSE, scrm.expr, "nosuchfn(1)")
  H.raises_code(scrm.INVALID, scrm.expr, 'matches(s, "(")')
  H.raises_code(scrm.LIMIT, scrm.expr, "1 + 2 + 3", {nodes = 3})
  H.raises_code(scrm.RANGE, scrm.expr, "1", {depth = 100000})
  H.contains(H.raises(scrm.expr, "1", {nodez = 3}), "unknown option 'nodez'")
  H.contains(H.raises(scrm.expr, "a\0b"), "zero byte")
  local e = scrm.expr("a / b")
  eq(e:eval{a = 6, b = 3}, 2)
  err = H.raises_code(scrm.EVAL, e.eval, e, {a = 1, b = 0})
  H.contains(err.message, "1:")
  H.contains(err.message, "division by zero")
  eq(err.line, 1)
  err = H.raises_code(scrm.EVAL, e.test, e, {a = "x", b = 1})
  local mul = scrm.expr("a * a")
  eq(mul:eval{a = 3037000499}, 9223372030926249001)
  H.contains(H.raises_code(scrm.RANGE, mul.eval, mul, {a = 4294967296}).message, "1:")
  -- the cost limit stops a costly evaluation
  local big = scrm.expr("len(s + s + s + s) > 0", {string = 8})
  H.raises_code(scrm.LIMIT, big.eval, big, {s = "abc"})
  -- now(): fixed by the argument, else the real time
  local n = scrm.expr("now()")
  eq(n:eval({}, T0), T0)
  assert(n:eval() > T0 - 365 * 24 * HOUR * 10)
  eq(scrm.expr("days_since(t)"):eval({t = T0 - 48 * HOUR}, T0), 2)
  -- host functions are not bound without a database
  H.raises_code(scrm.EVAL, scrm.expr('has_tag("vip")').eval, scrm.expr('has_tag("vip")'))
end)

test("expr: trace, close and __gc", function()
  local e = scrm.expr("a > 1 || b")
  local t = e:trace{a = 5}
  eq(t.ok, true); eq(t.value, true)
  eq(t.steps[1].expr, "a > 1 || b"); eq(t.steps[1].depth, 0)
  local skipped
  for _, s in ipairs(t.steps) do if s.expr == "b" then skipped = s end end
  eq(skipped.evaluated, false)
  t = scrm.expr("a / b"):trace{a = 1, b = 0}
  eq(t.ok, false); eq(t.code, scrm.EVAL); H.contains(t.error, "division by zero")
  t = scrm.expr("a"):trace{}
  eq(t.steps[1].missing, true)
  e:close()
  eq(e:is_closed(), true)
  e:close() -- twice is harmless
  eq(tostring(e), "scrm.expr (closed)")
  H.contains(H.raises_code(scrm.MISUSE, e.eval, e, {}).message, "expression is closed")
  for _ = 1, 200 do scrm.expr("x + 1"):eval{x = 1} end
  collectgarbage("collect")
end)

------------------------------------------------------------------ rules

test("rules: load, versions, get, list, disable, remove, config", function()
  local db = fresh()
  local r = db:rules_load(order_rule)
  eq(r.rules[1].id, "thanks"); eq(r.rules[1].version, 1); eq(r.rules[1].changed, true)
  r = db:rules_load(order_rule) -- the same definition again: same version
  eq(r.rules[1].version, 1); eq(r.rules[1].changed, false)
  local v2 = {}
  for k, x in pairs(order_rule) do v2[k] = x end
  v2.condition = "event.amount >= 20000"
  r = db:rules_load('[' .. '{"id":"other","trigger":{"type":"event","event":"view"},' ..
                    '"actions":[{"type":"noop"}]}]')
  eq(r.rules[1].id, "other")
  eq(db:rules_load{v2}.rules[1].version, 2)
  eq(db:rules_get("thanks").version, 2)
  eq(db:rules_get("thanks").current_version, 2)
  eq(db:rules_get("thanks", 1).condition, "event.amount >= 10000")
  eq(db:rules_get("thanks", 1).version, 1)
  local none, err = db:rules_get("nope")
  eq(none, nil); eq(err.code, scrm.NOTFOUND)
  none, err = db:rules_get("thanks", 7)
  eq(none, nil); eq(err.code, scrm.NOTFOUND)
  local list = db:rules_list()
  eq(#list, 2)
  local by = {}
  for _, x in ipairs(list) do by[x.id] = x end
  eq(by.thanks.enabled, true); eq(by.thanks.trigger, "event"); eq(by.thanks.on, "order")
  db:rules_enable("thanks", false)
  eq(db:rules_get("thanks").enabled, false)
  db:rules_enable("thanks", true)
  H.raises_code(scrm.NOTFOUND, db.rules_enable, db, "nope", true)
  H.contains(H.raises(db.rules_enable, db, "thanks", 1), "boolean expected")
  eq(db:rules_remove("other"), true)
  eq(#db:rules_list(), 1)
  eq(db:rules_get("other").removed, true)
  H.raises_code(scrm.NOTFOUND, db.rules_remove, db, "nope")
  -- refusals name the rule and the position
  err = H.raises_code(scrm.PARSE, db.rules_load, db,
                      {id = "bad", trigger = {type = "event", event = "order"},
                       condition = "event.amount >=", actions = {{type = "x"}}})
  H.contains(err.message, "rule 'bad'"); H.contains(err.message, "1:")
  H.raises_code(scrm.PARSE, db.rules_load, db, "{not json")
  H.raises_code(scrm.INVALID, db.rules_load, db, {id = "bad", trigger = {type = "nope"}})
  H.contains(H.raises(db.rules_load, db, 42), "rules (table or JSON text) expected")
  -- configuration
  local cfg = db:rules_config()
  eq(cfg.default_tz, "Asia/Shanghai")
  cfg = db:rules_config_set{groups = {marketing = {max = 2, per = "7d"}},
                            outbox = {backoff = "1m"}}
  eq(cfg.groups.marketing.max, 2)
  eq(db:rules_config().groups.marketing.per, "7d")
  H.raises_code(scrm.INVALID, db.rules_config_set, db, {nonsense = true})
  db:close()
end)

------------------------------------------------------------------ outbox

test("outbox: an event rule's host action, take/ack/fail/retry", function()
  local db = fresh()
  db:rules_load(order_rule)
  local cid = db:observe({phone = "13800138000"})
  event(db, "order", cid, {amount = 5000, currency = "CNY"}) -- condition false
  eq(#db:outbox_list(), 0)
  db:rules_enable("thanks", false) -- a disabled rule does not fire
  event(db, "order", cid, {amount = 12900, currency = "CNY"})
  eq(#db:outbox_list(), 0)
  eq(db:trace{rule = "thanks"}[1].outcome, "condition_false")
  db:rules_enable("thanks", true)
  local eid = event(db, "order", cid, {amount = 12900, currency = "CNY"})
  local list = db:outbox_list{state = "pending"}
  eq(#list, 1)
  local a = list[1]
  eq(a.action, "send_thanks"); eq(a.params.text, "thank you"); eq(a.customer, cid)
  eq(a.rule, "thanks"); eq(a.version, 1); eq(a.trigger.kind, "event"); eq(a.trigger.event, eid)
  eq(#a.key, 32); eq(a.attempt, 0)
  eq(#db:outbox_list{customer = cid, limit = 5}, 1)
  H.raises_code(scrm.INVALID, db.outbox_list, db, {state = "nope"})
  H.contains(H.raises(db.outbox_list, db, {sate = "x"}), "unknown option 'sate'")

  local taken = db:outbox_take(10, 60000)
  eq(#taken, 1); eq(taken[1].id, a.id); eq(taken[1].state, "leased"); eq(taken[1].attempt, 1)
  eq(taken[1].lease_until, T0 + 60000)
  eq(#db:outbox_take(10), 0, "leased: not offered again")
  now = T0 + 60001
  taken = db:outbox_take()
  eq(#taken, 1, "the lease ran out: offered again"); eq(taken[1].attempt, 2)
  -- fail: retried after the backoff (1m · 2^(attempt-1))
  eq(db:outbox_fail(a.id, "smtp down"), true)
  local f = db:outbox_list{state = "failed"}[1]
  eq(f.id, a.id); eq(f.last_error, "smtp down")
  eq(#db:outbox_take(), 0)
  now = now + 2 * 60000
  taken = db:outbox_take(1)
  eq(#taken, 1); eq(taken[1].attempt, 3)
  -- permanent failure: dead; ack refused until retried
  db:outbox_fail(a.id, nil, true)
  eq(db:outbox_list{state = "dead"}[1].id, a.id)
  H.raises_code(scrm.STATE, db.outbox_ack, db, a.id)
  H.raises_code(scrm.STATE, db.outbox_fail, db, a.id, "again")
  eq(db:outbox_retry(a.id), true)
  taken = db:outbox_take(1)
  eq(taken[1].id, a.id); eq(taken[1].attempt, 1, "retry resets the attempts")
  eq(db:outbox_ack(a.id), true)
  eq(db:outbox_ack(a.id), true, "acknowledging twice is harmless")
  eq(db:outbox_list{state = "done"}[1].id, a.id)
  H.raises_code(scrm.STATE, db.outbox_retry, db, a.id)
  H.raises_code(scrm.NOTFOUND, db.outbox_ack, db, 99999)
  H.raises_code(scrm.RANGE, db.outbox_take, db, 0)
  H.raises_code(scrm.RANGE, db.outbox_take, db, 1001)
  db:close()
end)

test("outbox: the iterator acknowledges after the body, never loses an action", function()
  local db = fresh()
  db:rules_load(order_rule)
  local cid = db:observe({phone = "13800138000"})
  for _ = 1, 5 do event(db, "order", cid, {amount = 20000, currency = "CNY"}) end
  eq(#db:outbox_list{state = "pending"}, 5)
  -- max 2: two actions, both acknowledged once the loop ends
  local seen = {}
  for action in db:outbox(2) do
    seen[#seen + 1] = action.id
    eq(action.state, "leased")
    eq(#db:outbox_list{state = "leased"}, 1, "only the action in hand is leased")
  end
  eq(#seen, 2)
  eq(#db:outbox_list{state = "done"}, 2)
  -- an error in the body: that action stays leased (offered again later)
  local ok = pcall(function()
    for action in db:outbox() do error("boom " .. action.id) end
  end)
  eq(ok, false)
  eq(#db:outbox_list{state = "leased"}, 1)
  eq(#db:outbox_list{state = "done"}, 2)
  -- break: the action in hand is not acknowledged either
  for _ in db:outbox() do break end
  eq(#db:outbox_list{state = "leased"}, 2)
  -- the body settles an action itself: the iterator does not ack over it
  local n = 0
  for action in db:outbox() do
    n = n + 1
    if n == 1 then db:outbox_fail(action.id, "later") end
  end
  eq(n, 1, "the one pending; the two leased ones are not ready")
  eq(#db:outbox_list{state = "failed"}, 1)
  eq(#db:outbox_list{state = "done"}, 2)
  -- after the leases (default 5 min) and the backoff: everything comes again
  now = now + 10 * 60000
  n = 0
  for action in db:outbox() do
    n = n + 1
    if action.last_error == "later" then db:outbox_ack(action.id) end
  end
  eq(n, 3)
  eq(#db:outbox_list{state = "done"}, 5)
  eq(db:outbox()(), nil, "nothing left")
  event(db, "order", cid, {amount = 20000, currency = "CNY"})
  for action in db:outbox(1, 1000) do eq(action.lease_until, now + 1000) end
  H.contains(H.raises(db.outbox, db, -1), "must not be negative")
  db:close()
end)

test("outbox: the delivery function, including one that raises", function()
  local db = fresh()
  db:rules_load(order_rule)
  local cid = db:observe({phone = "13800138000"})
  local got = {}
  db:outbox_set_handler(function(action)
    got[#got + 1] = action
    if action.params.text ~= "thank you" then error("unexpected") end
  end)
  event(db, "order", cid, {amount = 20000, currency = "CNY"})
  eq(#got, 1, "delivered right after the event's commit")
  eq(got[1].action, "send_thanks"); eq(got[1].customer, cid)
  eq(db:outbox_list{state = "done"}[1].id, got[1].id)
  eq(db:outbox_handler_error(), nil)

  -- a handler that raises: the action is failed, not lost; the call succeeds
  db:outbox_set_handler(function(action) error({reason = "api down", id = action.id}) end)
  local _, eid = db:event_add{key = "x1", type = "order", channel = "pos", at = now,
                               customer = cid, amount = 20000, currency = "CNY"}
  assert(eid > 0)
  local failed = db:outbox_list{state = "failed"}
  eq(#failed, 1)
  H.contains(failed[1].last_error, "delivery callback returned")
  local he = db:outbox_handler_error()
  eq(he.id, failed[1].id); eq(he.error.reason, "api down")
  H.contains(he.message, "table value")
  -- a string error, and returning false with a message
  db:outbox_set_handler(function() error("plain failure") end)
  event(db, "order", cid, {amount = 20000, currency = "CNY"})
  H.contains(db:outbox_handler_error().message, "plain failure")
  db:outbox_set_handler(function() return false, "declined" end)
  event(db, "order", cid, {amount = 20000, currency = "CNY"})
  eq(db:outbox_handler_error().message, "declined")
  eq(#db:outbox_list{state = "failed"}, 3)
  -- the handler may not call back into the handle: that fails the action
  db:outbox_set_handler(function() db:outbox_list() end)
  event(db, "order", cid, {amount = 20000, currency = "CNY"})
  H.contains(db:outbox_handler_error().message, "called back into the database")
  eq(#db:outbox_list{state = "failed"}, 4)

  -- deliver retries once the backoff has passed
  now = now + 60 * 60000
  got = {}
  db:outbox_set_handler(function(action) got[#got + 1] = action.id end)
  eq(db:outbox_handler_error(), nil, "a new handler starts clean")
  eq(db:outbox_deliver(2), 2)
  eq(db:outbox_deliver(), 2)
  eq(#got, 4)
  eq(#db:outbox_list{state = "done"}, 5)
  -- inside a batch the delivery waits for the commit
  db:batch(function()
    event(db, "order", cid, {amount = 20000, currency = "CNY"})
    eq(#got, 4)
  end)
  eq(#got, 5)
  -- removing the handler
  db:outbox_set_handler(nil)
  H.raises_code(scrm.MISUSE, db.outbox_deliver, db)
  event(db, "order", cid, {amount = 20000, currency = "CNY"})
  eq(#got, 5); eq(#db:outbox_list{state = "pending"}, 1)
  H.contains(H.raises(db.outbox_set_handler, db, 42), "function expected")
  -- the function is released by nil, by close and by __gc
  local weak = setmetatable({}, {__mode = "k"})
  local function watched() local f = function() end; weak[f] = true; return f end
  db:outbox_set_handler(watched())
  db:outbox_set_handler(nil)
  db:outbox_set_handler(watched())
  db:close()
  local db2 = fresh()
  db2:outbox_set_handler(watched())
  db2 = nil
  collectgarbage("collect"); collectgarbage("collect")
  eq(next(weak), nil, "every handler function was released")
end)

------------------------------------------------------------------ tick, trace

test("tick: an absence rule fires after its window; trace explains", function()
  local db = fresh()
  db:rules_load{id = "cart", trigger = {type = "absence", start = "cart_add", missing = "order",
                                        within = "72h"},
                condition = "profile.figures.orders >= 0",
                actions = {{type = "push_message", params = {text = "come back"}}}}
  local c = db:observe({phone = "13800138000"})
  local d = db:observe({phone = "13900139000"})
  local start = event(db, "cart_add", c)
  event(db, "cart_add", d)
  now = T0 + HOUR
  local order = event(db, "order", d, {amount = 100, currency = "CNY"})
  local s = db:tick(T0 + 72 * HOUR - 1)
  eq(s.absence, 0); eq(s.now, T0 + 72 * HOUR - 1)
  eq(#db:outbox_list(), 0)
  s = db:tick(T0 + 72 * HOUR)
  eq(s.absence, 1)
  local a = db:outbox_list()[1]
  eq(a.customer, c); eq(a.trigger.kind, "absence"); eq(a.trigger.event, start)
  now = T0 + 100 * HOUR
  s = db:tick() -- the handle's clock
  eq(s.now, now); eq(s.absence, 0)
  H.raises_code(scrm.RANGE, db.tick, db, -5)

  local tr = db:trace{customer = c}
  eq(#tr, 1)
  eq(tr[1].rule, "cart"); eq(tr[1].outcome, "fired"); eq(tr[1].trigger, "absence")
  eq(tr[1].event, start); eq(tr[1].at, T0 + 72 * HOUR); eq(tr[1].condition, nil)
  tr = db:trace{customer = d, rule = "cart"}
  eq(tr[1].outcome, "cancelled_by_event"); eq(tr[1].detail.by_event, order)
  tr = db:trace{rule = "cart", limit = 1, steps = true}
  eq(#tr, 1); eq(tr[1].condition.ok, true)
  eq(tr[1].condition.steps[1].expr, "profile.figures.orders >= 0")
  eq(#db:trace{since = T0 + 72 * HOUR}, 1)
  eq(#db:trace(), 2)
  H.raises_code(scrm.NOTFOUND, db.trace, db, {rule = "nope"})
  H.raises_code(scrm.RANGE, db.trace, db, {limit = -1})
  H.contains(H.raises(db.trace, db, {stpes = true}), "unknown option 'stpes'")
  eq(db:trace_prune(T0 + 72 * HOUR), 1)
  eq(#db:trace(), 1)
  db:close()
end)

------------------------------------------------------------------ tags

test("tags: groups, manual tags, a rule action's tag, rule tags and refresh", function()
  local db = fresh()
  eq(db:tags_group_set{name = "level", exclusive = true, description = "membership"}, true)
  db:tags_define{name = "gold", group = "level"}
  db:tags_define{name = "silver", group = "level"}
  db:tags_define('{"name":"高价值","description":"high value"}')
  db:tags_define{name = "buyer"}
  db:tags_define{name = "big", expr = "profile.figures.orders >= 2"}
  H.raises_code(scrm.NOTFOUND, db.tags_define, db, {name = "x", group = "nope"})
  H.raises_code(scrm.PARSE, db.tags_define, db, {name = "y", expr = "profile.figures.orders >="})
  H.raises_code(scrm.INVALID, db.tags_define, db, {name = "z", expr = "event.amount > 1"})
  local c = db:observe({phone = "13800138000"})

  db:tag_add(c, "silver", "alice")
  db:tag_add(c, "gold", "bob") -- exclusive: replaces silver
  db:tag_add(c, "高价值", "bob")
  eq(db:tag_has(c, "gold"), true); eq(db:tag_has(c, "silver"), false)
  eq(db:tag_has(c, "no such tag"), false)
  local held = {}
  for _, t in ipairs(db:tags_customer(c)) do held[t.tag] = t end
  eq(count(held), 2); eq(held.gold.group, "level"); eq(held.gold.source.actor, "bob")
  local hist = db:tags_history(c)
  eq(#hist, 4)
  eq(hist[1].tag, "高价值"); eq(hist[1].op, "add")
  local removed
  for _, h in ipairs(hist) do if h.op == "remove" then removed = h end end
  eq(removed.tag, "silver"); eq(removed.reason, "exclusive group")
  eq(#db:tags_history(c, 1), 1)
  db:tag_remove(c, "高价值", "alice")
  eq(db:tag_has(c, "高价值"), false)
  H.raises_code(scrm.NOTFOUND, db.tag_add, db, c, "nope", "alice")
  H.raises_code(scrm.NOTFOUND, db.tag_has, db, 99999, "gold")
  H.raises_code(scrm.STATE, db.tag_add, db, c, "big", "alice")

  -- a rule action's tag, recorded with the rule as source
  db:rules_load{id = "tagger", trigger = {type = "event", event = "order"},
                actions = {{type = "tag.add", tag = "buyer"}}}
  event(db, "order", c, {amount = 100, currency = "CNY"})
  eq(db:tag_has(c, "buyer"), true)
  for _, t in ipairs(db:tags_customer(c)) do
    if t.tag == "buyer" then eq(t.source.rule, "tagger"); eq(t.source.version, 1) end
  end
  -- the rule tag follows the customer's events
  eq(db:tag_has(c, "big"), false)
  event(db, "order", c, {amount = 100, currency = "CNY"})
  eq(db:tag_has(c, "big"), true)
  -- a new expression: nobody is evaluated until refresh
  db:tags_define{name = "big", expr = "profile.figures.orders >= 3"}
  eq(db:tag_has(c, "big"), true)
  local s = db:tags_refresh("big")
  eq(s.tags.big.removed, 1); eq(s.tags.big.holders, 0); eq(s.tags.big.version, 2)
  eq(db:tag_has(c, "big"), false)
  s = db:tags_refresh()
  eq(s.tags.big.added, 0)
  H.raises_code(scrm.NOTFOUND, db.tags_refresh, db, "nope")
  H.raises_code(scrm.INVALID, db.tags_refresh, db, "gold")
  local l = db:tags_list()
  local groups, tags = {}, {}
  for _, g in ipairs(l.groups) do groups[g.name] = g end
  for _, t in ipairs(l.tags) do tags[t.name] = t end
  eq(groups.level.exclusive, true)
  eq(tags.gold.customers, 1); eq(tags.big.kind, "rule"); eq(tags.big.version, 2)
  eq(tags.big.expr, "profile.figures.orders >= 3"); eq(tags.buyer.kind, "manual")
  db:close()
end)

------------------------------------------------------------------ segments

test("segments: count, ids (paged iterator), explain", function()
  local db = fresh()
  db:tags_define{name = "vip"}
  local ids = {}
  for i = 1, 7 do
    ids[i] = db:observe({phone = "1380013800" .. i})
    for _ = 1, i do event(db, "order", ids[i], {amount = 100, currency = "CNY"}) end
  end
  db:tag_add(ids[2], "vip", "alice"); db:tag_add(ids[6], "vip", "alice")
  eq(db:segment_count("profile.figures.orders >= 3"), 5)
  eq(db:segment_count('has_tag("vip")'), 2)
  eq(db:segment_count("false"), 0)
  local got = {}
  for id in db:segment_ids("profile.figures.orders >= 3", 2) do got[#got + 1] = id end
  eq(table.concat(got, ","), table.concat({ids[3], ids[4], ids[5], ids[6], ids[7]}, ","))
  got = {}
  for id in db:segment_ids('has_tag("vip") && profile.figures.orders > 1') do
    got[#got + 1] = id
  end
  eq(table.concat(got, ","), ids[2] .. "," .. ids[6])
  -- pages that end exactly on a page boundary
  got = {}
  for id in db:segment_ids("profile.figures.orders >= 4", 2) do got[#got + 1] = id end
  eq(#got, 4)
  for _ in db:segment_ids("false") do error("empty segment") end
  eq(db:segment_explain("profile.figures.orders >= 3").plan, "sql")
  local scan = db:segment_explain('len(profile.attributes.name) > 2')
  eq(scan.plan, "scan"); assert(type(scan.why) == "string")
  H.raises_code(scrm.PARSE, db.segment_count, db, "profile.figures.orders >")
  H.raises_code(scrm.INVALID, db.segment_ids, db, "event.amount > 1")
  H.raises_code(scrm.RANGE, db.segment_ids, db, "true", 0)
  db:close()
  H.raises_code(scrm.MISUSE, db.segment_count, db, "true")
end)

test("out-of-memory paths of the rule surfaces raise NOMEM and leak nothing", function()
  local db = fresh()
  db:rules_load(order_rule)
  db:tags_define{name = "buyer", expr = "profile.figures.orders >= 1"}
  local c = db:observe({phone = "13800138000"})
  local n = 0
  local calls = {
    function() -- an event that fires the rule: outbox, trace, rule tag
      n = n + 1
      return event(db, "order", c, {amount = 20000 + n, currency = "CNY"})
    end,
    function() return db:outbox_take(10, 60000) end,
    function() return db:trace{customer = c, steps = true} end,
    function() return db:tags_refresh() end,
    function() return db:tags_history(c) end,
    function() return db:segment_count("profile.figures.orders >= 1") end,
    function() return db:tick(now + HOUR) end,
    function() return db:rules_list() end,
  }
  for i, call in ipairs(calls) do
    local failures, ok = 0, false
    for nth = 1, 2000 do
      db:test_alloc_fail(nth)
      local err
      ok, err = pcall(call)
      db:test_alloc_fail(0)
      if ok then break end
      eq(type(err), "table", "error value of call " .. i)
      eq(err.code, scrm.NOMEM, "code of call " .. i)
      failures = failures + 1
    end
    assert(ok, "call " .. i .. " eventually succeeds")
    assert(failures > 0, "call " .. i .. " met an injected failure")
  end
  -- Nothing half-done: each failed event left no trace of itself.
  eq(#db:outbox_list(), 1, "one order fired the rule once")
  eq(db:tag_has(c, "buyer"), true)
  db:close()
end)

H.done()
