-- Events and profiles methods of the Lua binding, against the semantics of
-- include/scrm/profile.h (idempotent events, refunds, figures, attributes,
-- RFM, consent, erase, anonymize, masking) and the binding's conventions.
local H = require "harness"
local scrm = require "scrm"
local test, eq = H.test, H.eq

local P1, P1_E164, P2 = "13800138000", "+8613800138000", "13900139000"
local T0 = 1767225600000 -- 2026-01-01T00:00:00Z
local DAY = 86400000
local now = T0

local function fresh()
  now = T0
  local path = H.tmpname()
  return scrm.open(path, {clock = function() return now end}), path
end

local function order(db, key, customer, amount, at, more)
  local ev = {key = key, type = "order", channel = "pos", at = at or T0, customer = customer,
              amount = amount or 12900, currency = "CNY"}
  for k, v in pairs(more or {}) do ev[k] = v end
  return db:event_add(ev)
end

local function keys(events)
  local out = {}
  for i, e in ipairs(events) do out[i] = e.key end
  return table.concat(out, ",")
end

test("event_add by identifiers, from a table and from JSON", function()
  local db = fresh()
  local cid, eid = db:event_add{key = "T0042", type = "order", channel = "pos", at = T0,
                                ids = {phone = "138 0013 8000", email = {"Z@Example.com"}},
                                amount = 12900, currency = "CNY",
                                items = {{sku = "A1", qty = 2, price = 6450}},
                                props = {store = "SH-01"}}
  assert(cid > 0 and eid > 0)
  if scrm.INT64_IDS then eq(math.type(cid), "integer") end
  eq(db:resolve("phone", P1), cid)
  eq(db:resolve("email", "z@example.com"), cid)
  local e = db:events(cid)[1]
  eq(e.key, "T0042"); eq(e.type, "order"); eq(e.channel, "pos"); eq(e.at, T0)
  eq(e.amount, 12900); eq(e.currency, "CNY"); eq(e.refund_of, scrm.null)
  eq(e.items[1].sku, "A1"); eq(e.items[1].qty, 2); eq(e.props.store, "SH-01")
  local c2, e2 = db:event_add('{"key":"V1","type":"view","channel":"web","at":' .. T0 ..
                              ',"customer":' .. cid .. '}')
  eq(c2, cid); eq(e2, eid + 1)
  -- at given as RFC 3339 text, and left out (the clock)
  db:event_add{key = "V2", type = "view", channel = "web", at = "2026-01-02T08:00:00+08:00",
               customer = cid}
  now = T0 + 10 * DAY
  local ev = {key = "V3", type = "view", channel = "web", customer = cid}
  db:event_add(ev)
  eq(ev.at, nil, "the caller's table is left as it was")
  local at = {}
  for _, x in ipairs(db:events(cid)) do at[x.key] = x.at end
  eq(at.V2, T0 + DAY); eq(at.V3, T0 + 10 * DAY)
  db:close()
end)

test("a duplicate key raises DUPLICATE naming the stored event", function()
  local db = fresh()
  local cid = db:observe({phone = P1})
  local _, eid = order(db, "T1", cid)
  local err = H.raises_code(scrm.DUPLICATE, order, db, "T1", cid, 99999)
  eq(err.customer, cid); eq(err.event, eid); H.contains(err.message, "T1")
  eq(err.name, "duplicate"); eq(getmetatable(err), scrm.error_mt)
  eq(db:profile(cid).figures.net_spend.CNY, 12900)
  order(db, "T1", cid, 100, T0, {channel = "tmall"}) -- another channel, another event
  eq(db:profile(cid).figures.orders, 2)
  db:close()
end)

test("refunds and event errors", function()
  local db = fresh()
  local cid = db:observe({phone = P1})
  order(db, "T1", cid, 10000)
  db:event_add{key = "R1", type = "refund", channel = "pos", at = T0 + DAY, customer = cid,
               amount = 3000, currency = "CNY", refund_of = "T1"}
  local f = db:profile(cid).figures
  eq(f.orders, 1); eq(f.refunds, 1); eq(f.net_spend.CNY, 7000)
  local err = H.raises_code(scrm.INVALID, db.event_add, db,
    {key = "R2", type = "refund", channel = "pos", at = T0, customer = cid, amount = 8000,
     currency = "CNY", refund_of = "T1"})
  H.contains(err.message, "exceeds")
  H.raises_code(scrm.NOTFOUND, order, db, "T2", 424242)
  H.raises_code(scrm.NOTFOUND, db.event_add, db,
    {key = "T3", type = "view", channel = "pos", at = T0, ids = {no_such_kind = "x"}})
  H.raises_code(scrm.INVALID, db.event_add, db, {key = "T4", type = "view", channel = "pos",
                                                 at = T0})
  H.raises_code(scrm.INVALID, order, db, "T5", cid, 100, T0, {surprise = 1})
  H.raises_code(scrm.RANGE, order, db, "T6", cid, 100, -1)
  H.raises_code(scrm.PARSE, db.event_add, db, '{"key":"T7",')
  H.contains(H.raises(db.event_add, db, 42), "event (table or JSON text) expected")
  H.raises_code(scrm.INVALID, order, db, "T8", cid, 100, T0, {props = {print}})
  eq(#db:events(cid), 2, "nothing else was stored")
  db:close()
end)

test("import_events from text and from an array", function()
  local db = fresh()
  local cid = db:observe({phone = P1})
  local good = {key = "T1", type = "order", channel = "pos", at = T0, customer = cid,
                amount = 500, currency = "CNY"}
  local s = db:import_events{good, '{"key":"T2",', good,
                             {key = "V1", type = "view", channel = "web", at = T0,
                              ids = {phone = P2}}}
  eq(s.lines, 4); eq(s.stored, 2); eq(s.duplicate, 1); eq(s.rejected, 1)
  eq(s.errors[1].line, 2); eq(s.errors[1].code, "SCRM_PARSE")
  assert(db:resolve("phone", P2) > cid)
  s = db:import_events('\n\n{"key":"T3","type":"view","channel":"web","at":1,"customer":' ..
                       cid .. '}\n{oops}\n')
  eq(s.lines, 2); eq(s.stored, 1); eq(s.rejected, 1); eq(s.errors[1].line, 4)
  s = db:import_events("")
  eq(s.lines, 0); eq(#s.errors, 0)
  H.contains(H.raises(db.import_events, db, 42), "JSON-lines text or an array")
  H.contains(H.raises(db.import_events, db, {true}), "event 1 is a boolean")
  db:close()
end)

test("add_events: results per event, customer order, input_order", function()
  local db = fresh()
  local a, b = db:observe({phone = P1}), db:observe({phone = P2})
  local evs = {
    {key = "K1", type = "order", channel = "pos", at = T0, customer = b, amount = 500,
     currency = "CNY"},
    {key = "V1", type = "view", channel = "pos", at = T0 + 1, customer = a,
     props = {sku = "A1"}, items = {{sku = "A1", qty = 1}}},
    {key = "K1", type = "order", channel = "pos", at = T0 + 2, customer = a, amount = 700,
     currency = "CNY"},
    {key = "X1", type = "view", channel = "pos", at = T0, customer = 999},
    {key = "B1", type = "Bad!", channel = "pos", customer = a, props = {}},
  }
  local r = db:add_events(evs)
  eq(#r, 5)
  -- By customer id: a's K1 first, b's is the duplicate.
  eq(r[2].error, nil); eq(r[3].error, nil)
  eq(r[1].error.code, scrm.DUPLICATE); eq(r[1].customer, a); eq(r[1].event, r[3].event)
  eq(r[4].error.code, scrm.NOTFOUND); eq(r[4].customer, 0); eq(r[4].event, 0)
  eq(r[5].error.code, scrm.INVALID); H.contains(r[5].error.message, "event 5")
  -- The library's reasons, as add_event would give them.
  H.contains(r[5].error.message, "[a-z0-9_]"); H.contains(r[4].error.message, "999")
  assert(r[2].event < r[3].event)
  eq(db:profile(a).figures.net_spend.CNY, 700)
  eq(db:events(a)[2].props.sku, "A1")
  -- Input order: the first K1 wins; events named by identifiers; at = nil is the clock.
  now = T0 + 5
  r = db:add_events({
    {key = "K2", type = "order", channel = "web", customer = b, amount = 5, currency = "CNY"},
    {key = "K2", type = "order", channel = "web", customer = a, amount = 5, currency = "CNY"},
    {key = "V9", type = "view", channel = "web", ids = {phone = P1}},
  }, {input_order = true})
  eq(r[1].error, nil); eq(r[2].error.code, scrm.DUPLICATE); eq(r[2].customer, b)
  eq(r[3].error, nil); eq(r[3].customer, a)
  eq(db:events(a, {limit = 1})[1].at, T0 + 5)
  eq(#db:add_events{}, 0)
  H.contains(H.raises(db.add_events, db, {true}), "event 1 is a boolean")
  H.contains(H.raises(db.add_events, db, {{key = "Z", colour = 1}}), "event 1: unknown field 'colour'")
  H.contains(H.raises(db.add_events, db, {{key = "Z", at = "2026"}}), "'at' must be an integer")
  H.contains(H.raises(db.add_events, db, {{key = 5}}), "'key' must be a string")
  H.contains(H.raises(db.add_events, db, {}, {sorted = true}), "unknown option 'sorted'")
  db:close()
end)

test("events with since and limit; event_stats", function()
  local db = fresh()
  local cid = db:observe({phone = P1})
  for i = 0, 4 do order(db, "T" .. i, cid, 100 * (i + 1), T0 + i * DAY) end
  db:event_add{key = "U1", type = "order", channel = "pos", at = T0 - DAY, customer = cid,
               amount = 7, currency = "USD"}
  eq(keys(db:events(cid)), "T4,T3,T2,T1,T0,U1")
  eq(keys(db:events(cid, {limit = 2})), "T4,T3")
  eq(keys(db:events(cid, {since = T0 + 3 * DAY})), "T4,T3")
  H.raises_code(scrm.RANGE, db.events, db, cid, {limit = -1})
  H.contains(H.raises(db.events, db, cid, {limt = 1}), "unknown option 'limt'")
  H.raises_code(scrm.NOTFOUND, db.events, db, 424242)
  local n, sum = db:event_stats(cid, "order")
  eq(n, 6); eq(sum, 1500)
  n, sum = db:event_stats(cid, "order", {currency = "USD"})
  eq(n, 6); eq(sum, 7)
  n, sum = db:event_stats(cid, "order", {since = T0 + 4 * DAY})
  eq(n, 1); eq(sum, 500)
  db:close()
end)

test("profile: masked by default, nil plus error when unknown", function()
  local db = fresh()
  local cid = db:observe({phone = P1, email = "zhang@example.com"})
  order(db, "T1", cid, 25800)
  local p = db:profile(cid)
  eq(p.customer, cid); eq(p.erased, false); eq(p.rfm, scrm.null)
  eq(p.figures.avg_order_value.CNY, 25800)
  local vals = {}
  for _, i in ipairs(p.identifiers) do vals[#vals + 1] = i.value end
  table.sort(vals)
  eq(table.concat(vals, " "), "138****8000 z***@example.com")
  vals = {}
  for _, i in ipairs(db:profile(cid, {unmasked = true}).identifiers) do vals[#vals + 1] = i.value end
  table.sort(vals)
  eq(table.concat(vals, " "), P1_E164 .. " zhang@example.com")
  local none, err = db:profile(424242)
  eq(none, nil); eq(err.code, scrm.NOTFOUND)
  H.contains(H.raises(db.profile, db, cid, {masked = false}), "unknown option 'masked'")
  db:close()
end)

test("merge sums the figures, unmerge splits them", function()
  local db = fresh()
  local a, b = db:observe({phone = P1}), db:observe({phone = P2})
  order(db, "A1", a, 100); order(db, "B1", b, 200)
  local m = db:merge(a, b)
  eq(db:profile(b).customer, a)
  eq(db:profile(a).figures.net_spend.CNY, 300)
  db:unmerge(m)
  eq(db:profile(a).figures.net_spend.CNY, 100)
  eq(db:profile(b).figures.net_spend.CNY, 200)
  db:close()
end)

test("attributes: set, get, unset", function()
  local db = fresh()
  local cid = db:observe({phone = P1})
  eq(db:set_attributes(cid, {name = "王小明", birthday = "1990-05-01", tz = "Asia/Shanghai",
                             vip = true, visits = 12, score = 4.5, tags = {"tea"}}), true)
  eq(db:get_attribute(cid, "name"), "王小明")
  eq(db:get_attribute(cid, "vip"), true)
  eq(db:get_attribute(cid, "visits"), 12)
  eq(db:get_attribute(cid, "score"), 4.5)
  eq(db:get_attribute(cid, "tags")[1], "tea")
  db:set_attributes(cid, '{"visits":13,"score":null}')
  db:set_attributes(cid, {tags = scrm.null})
  db:set_attributes(cid, {}) -- nothing to do
  eq(db:get_attribute(cid, "visits"), 13)
  local v, err = db:get_attribute(cid, "score")
  eq(v, nil); eq(err.code, scrm.NOTFOUND); H.contains(err.message, "score")
  eq(db:get_attribute(cid, "tags"), nil)
  eq(db:unset_attribute(cid, "vip"), true)
  H.raises_code(scrm.NOTFOUND, db.unset_attribute, db, cid, "vip")
  -- all or nothing
  H.raises_code(scrm.INVALID, db.set_attributes, db, cid, {visits = 14, birthday = "01/05/1990"})
  H.raises_code(scrm.INVALID, db.set_attributes, db, cid, {["Bad Name"] = 1})
  eq(db:get_attribute(cid, "visits"), 13)
  H.raises_code(scrm.PARSE, db.set_attributes, db, cid, "{")
  H.raises_code(scrm.NOTFOUND, db.set_attributes, db, 424242, {a = 1})
  H.contains(H.raises(db.set_attributes, db, cid, 5), "attributes (table or JSON text)")
  local p = db:profile(cid).attributes
  eq(p.name, "王小明"); eq(p.vip, nil); eq(p.score, nil)
  db:close()
end)

test("profile configuration and RFM refresh", function()
  local db = fresh()
  local conf = db:profile_config()
  eq(conf.rfm_window_days, 365); eq(conf.currency, "CNY"); eq(conf.lifecycle.dormant_days, 365)
  conf = db:profile_config_set{rfm_window_days = 180, lifecycle = {new_days = 14}}
  eq(conf.rfm_window_days, 180); eq(conf.lifecycle.new_days, 14)
  eq(db:profile_config_set('{"rfm_window_days":365}').rfm_window_days, 365)
  H.raises_code(scrm.RANGE, db.profile_config_set, db, {rfm_window_days = 0})
  H.raises_code(scrm.INVALID, db.profile_config_set, db, {lifecycle = {new_days = 500}})
  H.raises_code(scrm.INVALID, db.profile_config_set, db, {window = 1})

  local a, b, c = db:observe({phone = P1}), db:observe({phone = P2}),
                  db:observe({phone = "13700137000"})
  order(db, "A1", a, 10000, T0 - 10 * DAY)
  order(db, "A2", a, 10000, T0 - 2 * DAY)
  order(db, "B1", b, 50000, T0 - 40 * DAY)
  order(db, "C1", c, 90000, T0 - 400 * DAY) -- outside the window
  local s = db:rfm_refresh(T0)
  eq(s.customers, 3); eq(s.scored, 2); eq(s.refreshed_at, T0)
  eq(s.lifecycle.new + s.lifecycle.active + s.lifecycle.at_risk + s.lifecycle.dormant +
     s.lifecycle.lost, 3)
  local r = db:profile(a).rfm
  eq(r.recency_days, 2); eq(r.frequency, 2); eq(r.monetary, 20000)
  eq(r.r, 3); eq(r.f, 3); eq(r.m, 1)
  r = db:profile(b).rfm
  eq(r.r, 1); eq(r.f, 1); eq(r.m, 3)
  r = db:profile(c).rfm
  eq(r.r, scrm.null); eq(r.frequency, 0)
  now = T0 + 5
  eq(db:rfm_refresh().refreshed_at, T0 + 5)
  H.raises_code(scrm.RANGE, db.rfm_refresh, db, -1)
  H.contains(H.raises(db.rfm_refresh, db, 1.5), "integer expected")
  db:close()
end)

test("consent", function()
  local db = fresh()
  local cid = db:observe({phone = P1})
  eq(db:consent_get(cid, "marketing"), false)
  eq(db:consent_set(cid, "marketing", true, {source = "wecom"}), true)
  eq(db:consent_get(cid, "marketing"), true)
  local c = db:profile(cid).consent.marketing
  eq(c.granted, true); eq(c.at, T0); eq(c.source, "wecom")
  db:consent_set(cid, "marketing", false, {at = T0 + DAY})
  eq(db:consent_get(cid, "marketing"), false)
  db:consent_set(cid, "marketing", true, {at = T0 - DAY})
  eq(db:consent_get(cid, "marketing"), false, "the latest time wins")
  H.raises_code(scrm.INVALID, db.consent_set, db, cid, "Marketing!", true)
  H.raises_code(scrm.NOTFOUND, db.consent_set, db, 424242, "marketing", true)
  H.raises_code(scrm.NOTFOUND, db.consent_get, db, 424242, "marketing")
  H.contains(H.raises(db.consent_set, db, cid, "marketing", "yes"), "boolean expected")
  H.contains(H.raises(db.consent_set, db, cid, "marketing", true, {src = "x"}),
             "unknown option 'src'")
  db:close()
end)

test("erase leaves totals and nothing personal", function()
  local db, path = fresh()
  local cid = db:observe({phone = P1, wechat_unionid = "oUnion_secret"})
  order(db, "T1", cid, 25800, T0, {props = {note = "gift for Wang"}})
  db:set_attributes(cid, {name = "王小明"})
  db:consent_set(cid, "marketing", true, {source = "wecom"})
  eq(db:erase(cid, "customer request"), true)
  local p = db:profile(cid, {unmasked = true})
  eq(p.erased, true); eq(#p.identifiers, 0); eq(next(p.attributes), nil)
  eq(p.figures.net_spend.CNY, 25800)
  eq(db:events(cid)[1].props, scrm.null)
  eq(db:consent_get(cid, "marketing"), false)
  eq(db:resolve("phone", P1), nil)
  local err = H.raises_code(scrm.DUPLICATE, order, db, "T1", cid, 25800)
  eq(err.customer, cid)
  H.raises_code(scrm.STATE, order, db, "T2", cid)
  H.raises_code(scrm.STATE, db.set_attributes, db, cid, {a = 1})
  H.raises_code(scrm.STATE, db.erase, db, cid)
  H.raises_code(scrm.NOTFOUND, db.erase, db, 424242)
  db:close() -- the last handle: the WAL is checkpointed into the file
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  for _, secret in ipairs{"8613800138000", "oUnion_secret", "王小明", "gift for Wang"} do
    assert(not data:find(secret, 1, true), secret .. " is still in the file")
  end
end)

test("anonymize_inactive", function()
  local db = fresh()
  local old = db:observe({phone = P1}, {at = T0 - 400 * DAY})
  local new = db:observe({phone = P2}, {at = T0 - 400 * DAY})
  order(db, "T1", old, 100, T0 - 300 * DAY)
  order(db, "T2", new, 100, T0 - 10 * DAY)
  eq(db:anonymize_inactive(100, T0), 1)
  eq(db:profile(old).erased, true); eq(db:profile(new).erased, false)
  eq(db:anonymize_inactive(100, T0), 0)
  eq(db:anonymize_inactive(5), 1, "the clock: T2 is 10 days old")
  H.raises_code(scrm.RANGE, db.anonymize_inactive, db, 0)
  H.raises_code(scrm.RANGE, db.anonymize_inactive, db, 36501)
  db:close()
end)

test("scrm.mask", function()
  eq(scrm.mask("phone", "+8613800138000"), "138****8000")
  eq(scrm.mask("email", "zhang@example.com"), "z***@example.com")
  eq(scrm.mask("member_card", "M00012345"), "M***5")
  eq(scrm.mask("nick", "小"), "*")
  H.raises_code(scrm.INVALID, scrm.mask, "nick", "\255\254")
  H.raises_code(scrm.LIMIT, scrm.mask, "nick", string.rep("x", 64 * 1024 + 1))
  H.contains(H.raises(scrm.mask, "phone"), "bad argument #2")
end)

test("batches, use after close, read-only", function()
  local db, path = fresh()
  local cid = db:observe({phone = P1})
  local ok = pcall(db.batch, db, function() order(db, "T1", cid); error("abort") end)
  eq(ok, false)
  eq(#db:events(cid), 0)
  db:batch(function()
    order(db, "T1", cid)
    H.raises_code(scrm.DUPLICATE, order, db, "T1", cid) -- refused; the batch goes on
    order(db, "T2", cid)
  end)
  eq(#db:events(cid), 2)
  db:close()
  for _, call in ipairs{function() return order(db, "T3", cid) end,
                        function() return db:profile(cid) end,
                        function() return db:rfm_refresh() end} do
    H.raises_code(scrm.MISUSE, call)
  end
  local ro = scrm.open(path, {readonly = true})
  eq(ro:profile(cid).customer, cid)
  H.raises_code(scrm.READONLY, order, ro, "T3", cid)
  ro:close()
end)

test("out-of-memory paths raise NOMEM and leak nothing", function()
  local db = fresh()
  local cid = db:observe({phone = P1})
  order(db, "T0", cid)
  local n = 0
  local calls = {
    function() -- named by identifiers: the observation allocates
      n = n + 1
      return db:event_add{key = "M" .. n, type = "order", channel = "pos", at = T0,
                          ids = {phone = P1}, amount = 100, currency = "CNY"}
    end,
    function() return db:profile(cid) end,
    function() return db:events(cid) end,
    function() return db:rfm_refresh(T0) end,
    function() return db:import_events{{key = "I" .. n, type = "view", channel = "web",
                                        at = T0, customer = cid}} end,
    function()
      n = n + 1
      local r = db:add_events{{key = "A" .. n, type = "order", channel = "pos", at = T0,
                               customer = cid, amount = 1, currency = "CNY"},
                              {key = "B" .. n, type = "view", channel = "pos", at = T0,
                               ids = {phone = P1}, props = {x = 1}}}
      assert(r[1].error == nil and r[2].error == nil)
      return r
    end,
  }
  for i, call in ipairs(calls) do
    local failures, ok = 0, false
    for nth = 1, 500 do
      db:test_alloc_fail(nth)
      local err
      ok, err = pcall(call)
      db:test_alloc_fail(0)
      if ok then break end
      eq(type(err), "table", "error value")
      eq(err.code, scrm.NOMEM, "code")
      failures = failures + 1
    end
    assert(ok, "call " .. i .. " eventually succeeds")
    assert(failures > 0, "call " .. i .. " met an injected failure")
  end
  eq(db:profile(cid).figures.orders, 3)
  db:close()
end)

test("props = {} is an empty object; scrm.object marks tables as objects", function()
  local db = fresh()
  local cid = select(1, db:event_add{key = "P0", type = "view", channel = "web", at = T0,
                                     ids = {phone = P1}, props = {}})
  local ev = {key = "P1", type = "view", channel = "web", at = T0, customer = cid, props = {}}
  db:event_add(ev)
  eq(next(ev.props), nil, "the caller's table is left as it was")
  eq(getmetatable(ev.props), nil)
  -- items must be an array: {} stays []; scrm.object() is refused there
  db:event_add{key = "P2", type = "view", channel = "web", at = T0, customer = cid, items = {}}
  H.raises_code(scrm.INVALID, db.event_add, db, {key = "P3", type = "view", channel = "web",
                at = T0, customer = cid, items = scrm.object()})
  local t = {}
  eq(scrm.object(t), t)
  db:event_add{key = "P4", type = "view", channel = "web", at = T0, customer = cid,
               props = scrm.object()}
  local got = {}
  for _, e in ipairs(db:events(cid)) do got[e.key] = e end
  eq(next(got.P1.props), nil)
  eq(type(got.P1.props), "table")
  eq(type(got.P2.items), "table")
  -- a decoded object, even an empty one, encodes back as an object
  db:event_add{key = "P5", type = "view", channel = "web", at = T0, customer = cid,
               props = got.P4.props}
  H.raises(function() scrm.object(42) end)
  db:close()
end)

H.done()
