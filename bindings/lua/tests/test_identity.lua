-- Identity methods of the Lua binding, against the semantics of
-- include/scrm/identity.h (normalization, observe, resolve, merge, conflict,
-- never-merge, unmerge, history, explain) and the binding's own conventions.
local H = require "harness"
local scrm = require "scrm"
local test, eq = H.test, H.eq

local P1, P1_E164, P2 = "13800138000", "+8613800138000", "13900139000"
local FIXED = 1767225600000

local function fresh()
  return scrm.open(H.tmpname(), {clock = function() return FIXED end})
end

local function pairs_of(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v.kind .. "=" .. v.value end
  table.sort(out)
  return table.concat(out, ",")
end

local function names(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v.name end
  return out
end

local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end

test("default kinds, ordered by (priority, name)", function()
  local db = fresh()
  local kinds = db:kinds()
  local n = names(kinds)
  for _, k in ipairs{"wechat_unionid", "phone", "email"} do assert(has(n, k), k) end
  for i = 2, #kinds do
    local a, b = kinds[i - 1], kinds[i]
    assert(a.priority < b.priority or (a.priority == b.priority and a.name < b.name), "order")
  end
  eq(db:kind_get("wechat_unionid").limit, 1)
  local k, err = db:kind_get("no_such_kind")
  eq(k, nil); eq(err.code, scrm.NOTFOUND); H.contains(err.message, "no_such_kind")
  db:close()
end)

test("phone and email normalization", function()
  local db = fresh()
  for _, raw in ipairs{P1, "138 0013 8000", "+86 138-0013-8000", " 13800138000 "} do
    eq(db:normalize("phone", raw), P1_E164, raw)
  end
  eq(db:normalize("phone", 13800138000), P1_E164, "a number")
  eq(db:normalize("email", "  Li.Lei@Example.COM "), "li.lei@example.com")
  H.raises_code(scrm.NOTFOUND, db.normalize, db, "no_such_kind", "x")
  db:close()
end)

test("blocked values are rejected", function()
  local db = fresh()
  local err = H.raises_code(scrm.INVALID, db.normalize, db, "phone", "00000000000")
  H.contains(err.message, "00000000000")
  err = H.raises_code(scrm.INVALID, db.normalize, db, "wechat_unionid", "null")
  H.contains(err.message, "blocked")
  local before = db:info().tables
  err = H.raises_code(scrm.INVALID, db.observe, db, {phone = "00000000000"})
  H.contains(err.message, "00000000000")
  local after = db:info().tables
  for name, rows in pairs(before) do eq(after[name], rows, "rows of " .. name) end
  H.raises_code(scrm.INVALID, db.resolve, db, "phone", "00000000000")
  -- next to a usable value a blocked one is reported, not an error
  local cid, rep = db:observe({phone = {"00000000000", P1}, wechat_unionid = "null"},
                              {report = true})
  eq(rep.outcome, "created")
  eq(#rep.rejected, 2)
  eq(pairs_of(db:identifiers(cid)), "phone=" .. P1_E164)
  db:close()
end)

test("kind_set from a table and from JSON", function()
  local db = fresh()
  eq(db:kind_set{name = "member_card", normalizer = "pattern", pattern = "^M(\\d{8})$",
                 priority = 30, limit = 1, blocklist = {}}, true)
  eq(db:normalize("member_card", "M12345678"), "12345678")
  H.raises_code(scrm.INVALID, db.normalize, db, "member_card", "X1")
  local k = db:kind_get("member_card")
  eq(k.name, "member_card"); eq(k.normalizer, "pattern"); eq(k.limit, 1)
  assert(has(names(db:kinds()), "member_card"))
  db:kind_set('{"name":"shop_nick","normalizer":"casefold","priority":50,"limit":0}')
  eq(db:normalize("shop_nick", "ABC"), "abc")
  H.raises_code(scrm.PARSE, db.kind_set, db, '{"name": "x", ')
  H.raises_code(scrm.INVALID, db.kind_set, db, {name = "Bad Name!", normalizer = "trim"})
  H.raises_code(scrm.INVALID, db.kind_set, db, {name = "k", normalizer = "trim", surprise = 1})
  H.raises_code(scrm.INVALID, db.kind_set, db, {name = "k", normalizer = "pattern",
                                                pattern = "(unclosed"})
  H.contains(H.raises(db.kind_set, db, 42), "kind definition")
  -- tables that are not JSON raise before reaching the library
  H.raises_code(scrm.INVALID, db.kind_set, db, {name = "k", normalizer = print})
  H.raises_code(scrm.INVALID, db.kind_set, db, {name = "k", [2] = "x"})
  local cyc = {}; cyc.self = cyc
  H.raises_code(scrm.INVALID, db.kind_set, db, cyc)
  db:close()
end)

test("strings survive the JSON round trip both ways", function()
  local db = fresh()
  local bl = {"a\"b\\c", "tab\there", "ctl\1x", "小明", "😀", "/slash", "line\nbreak"}
  db:kind_set{name = "nick", normalizer = "trim", priority = 70, limit = 0, blocklist = bl,
              block_patterns = {}}
  local k = db:kind_get("nick")
  eq(#k.blocklist, #bl)
  for i, v in ipairs(bl) do eq(k.blocklist[i], v, "blocklist[" .. i .. "]") end
  eq(next(k.block_patterns), nil, "empty array")
  local cid = db:observe({nick = "x\"y"})
  eq(db:identifiers(cid)[1].value, "x\"y")
  H.contains(db:explain_dot(cid), "x\\\"y")
  db:close()
end)

test("observe outcomes: created, unchanged, attached, merged", function()
  local db = fresh()
  local c1, rep = db:observe({phone = P1}, {report = true})
  eq(rep.outcome, "created"); eq(rep.customer, c1); assert(c1 > 0)
  if scrm.INT64_IDS then eq(math.type(c1), "integer") end
  local again
  again, rep = db:observe({phone = "138 0013 8000"}, {report = true})
  eq(again, c1); eq(rep.outcome, "unchanged")
  local same
  same, rep = db:observe({phone = P1, email = "A@Example.com"}, {report = true})
  eq(same, c1); eq(rep.outcome, "attached")
  local c2 = db:observe({email = "b@example.com"})
  assert(c2 > c1)
  local merged
  merged, rep = db:observe({phone = P1, email = "b@example.com"}, {channel = "pos", report = true})
  eq(merged, c1); eq(rep.outcome, "merged"); eq(#rep.merged, 1)
  eq(rep.merged[1].survivor, c1); eq(rep.merged[1].absorbed, c2)
  eq(db:canonical(c2), c1); eq(db:canonical(c1), c1)
  eq(db:resolve("email", "B@EXAMPLE.COM"), c1)
  db:close()
end)

test("resolve, canonical: nil plus error when not found", function()
  local db = fresh()
  local id, err = db:resolve("phone", P2)
  eq(id, nil); eq(err.code, scrm.NOTFOUND); eq(getmetatable(err), scrm.error_mt)
  id, err = db:canonical(424242)
  eq(id, nil); eq(err.code, scrm.NOTFOUND)
  -- other failures raise
  H.raises_code(scrm.INVALID, db.resolve, db, "phone", "00000000000")
  H.contains(H.raises(db.canonical, db, 1.5), "integer expected")
  H.contains(H.raises(db.canonical, db, "7"), "integer expected")
  db:close()
end)

test("ids as lists, as pairs, and numbers", function()
  local db = fresh()
  local cid = db:observe({phone = {P1, P2}})
  eq(db:resolve("phone", P2), cid)
  eq(db:observe({{"phone", P2}, {"email", "c@example.com"}}), cid)
  eq(db:resolve("email", "c@example.com"), cid)
  eq(db:observe({phone = 13900139000}), cid)
  H.raises_code(scrm.INVALID, db.observe, db, {})
  H.raises_code(scrm.NOTFOUND, db.observe, db, {no_such_kind = "x"})
  H.contains(H.raises(db.observe, db, {phone = true}), "strings or numbers")
  H.contains(H.raises(db.observe, db, {phone = "138\0"}), "zero byte")
  H.contains(H.raises(db.observe, db, {phone = P1}, {chanel = "x"}), "unknown option 'chanel'")
  H.contains(H.raises(db.observe, db, {phone = P1}, {channel = 5}), "channel")
  H.contains(H.raises(db.observe, db, {phone = P1}, {at = 1.5}), "'at'")
  H.raises_code(scrm.INVALID, db.observe, db, {phone = P1}, {channel = ""})
  db:close()
end)

test("identifiers carry channel and time; at and the clock", function()
  local db = fresh()
  local at = 1700000000123
  local cid = db:observe({phone = P1, email = "x@example.com"}, {channel = "wecom", at = at})
  local ids = db:identifiers(cid)
  eq(pairs_of(ids), "email=x@example.com,phone=" .. P1_E164)
  for _, i in ipairs(ids) do
    eq(i.channel, "wecom"); eq(i.at, at); assert(i.observation)
  end
  local c2 = db:observe({phone = P2}) -- default channel, time from the clock
  eq(db:identifiers(c2)[1].at, FIXED)
  eq(db:identifiers(c2)[1].channel, "api")
  db:close()
end)

test("observe_json, from text and from a table", function()
  local db = fresh()
  local c1, rep = db:observe_json({channel = "tmall", at = FIXED,
    ids = {tmall_buyer_nick = "小明", phone = {"138 0013 8000"}}}, {report = true})
  eq(rep.outcome, "created")
  eq(db:observe_json('{"channel":"pos","ids":{"phone":"13800138000"}}'), c1)
  local c, r = db:observe_json('{"channel":"pos","ids":{"phone":"13800138000"}}', true)
  eq(c, c1); eq(r.outcome, "unchanged")
  eq(db:resolve("tmall_buyer_nick", "小明"), c1)
  H.raises_code(scrm.PARSE, db.observe_json, db, '{"channel": "pos", "ids": {')
  H.raises_code(scrm.INVALID, db.observe_json, db,
                {channel = "pos", ids = {phone = P1}, surprise = true})
  db:close()
end)

test("two unionids: conflict, no merge", function()
  local db = fresh()
  local c1 = db:observe({wechat_unionid = "oUnion_1", phone = P1})
  local c2 = db:observe({wechat_unionid = "oUnion_2", phone = P2})
  assert(c1 ~= c2)
  local cid, rep = db:observe({wechat_unionid = "oUnion_2", phone = P1}, {report = true})
  assert(cid == c1 or cid == c2)
  eq(#rep.merged, 0)
  assert(#rep.conflicts > 0, "conflict recorded")
  for _, c in ipairs(rep.conflicts) do assert(c.reason and c.owner) end
  eq(db:canonical(c1), c1); eq(db:canonical(c2), c2)
  eq(db:resolve("wechat_unionid", "oUnion_1"), c1)
  eq(db:resolve("wechat_unionid", "oUnion_2"), c2)
  assert(#db:explain(c1).conflicts > 0 or #db:explain(c2).conflicts > 0)
  db:close()
end)

local function two_customers(db)
  return db:observe({phone = P1, email = "a@example.com"}),
         db:observe({phone = P2, email = "b@example.com"})
end

test("manual merge and history", function()
  local db = fresh()
  local a, b = two_customers(db)
  local m = db:merge(b, a, "same person, confirmed by phone call")
  assert(type(m) == "number" and m > 0)
  eq(db:canonical(b), a)
  eq(#db:identifiers(b), 4)
  H.raises_code(scrm.INVALID, db.merge, db, a, b)
  H.raises_code(scrm.NOTFOUND, db.merge, db, a, 999999)
  local hist = db:history(a)
  eq(#hist, 1)
  eq(hist[1].op, "merge"); eq(hist[1].survivor, a); eq(hist[1].absorbed, b); eq(hist[1].id, m)
  H.contains(hist[1].reason, "phone call")
  eq(hist[1].undone_by, scrm.null, "JSON null is scrm.null")
  db:close()
end)

test("never_merge", function()
  local db = fresh()
  local a, b = two_customers(db)
  eq(db:never_merge(a, b, "twins"), true)
  H.raises_code(scrm.EXISTS, db.never_merge, db, b, a)
  H.raises_code(scrm.CONFLICT, db.merge, db, a, b)
  H.raises_code(scrm.INVALID, db.never_merge, db, a, a)
  H.raises_code(scrm.NOTFOUND, db.never_merge, db, a, 999999)
  local _, rep = db:observe({phone = P1, email = "b@example.com"}, {report = true})
  eq(#rep.merged, 0); assert(#rep.conflicts > 0)
  eq(db:canonical(a), a); eq(db:canonical(b), b)
  db:close()
end)

test("unmerge restores both customers", function()
  local db = fresh()
  local a, b = two_customers(db)
  local ids_a, ids_b = pairs_of(db:identifiers(a)), pairs_of(db:identifiers(b))
  local _, rep = db:observe({phone = P1, email = "b@example.com"}, {report = true})
  eq(rep.outcome, "merged")
  local m = rep.merged[1].merge
  eq(db:canonical(b), a)
  local u = db:unmerge(m, "wrong link")
  assert(u > m)
  eq(db:canonical(a), a); eq(db:canonical(b), b)
  eq(pairs_of(db:identifiers(a)), ids_a); eq(pairs_of(db:identifiers(b)), ids_b)
  eq(db:resolve("email", "b@example.com"), b)
  local hist = {}
  for _, h in ipairs(db:history(a)) do hist[h.id] = h end
  eq(hist[m].undone_by, u); eq(hist[u].op, "unmerge")
  H.raises_code(scrm.STATE, db.unmerge, db, m)
  H.raises_code(scrm.NOTFOUND, db.unmerge, db, 999999)
  _, rep = db:observe({phone = P1, email = "b@example.com"}, {report = true})
  eq(#rep.merged, 0); assert(#rep.conflicts > 0)
  db:close()
end)

test("explain and explain_dot", function()
  local db = fresh()
  local a, b = two_customers(db)
  db:merge(a, b)
  local g = db:explain(b)
  for _, key in ipairs{"customer", "canonical", "absorbed", "identifiers", "observations",
                       "history", "conflicts"} do
    assert(g[key] ~= nil, key)
  end
  eq(g.canonical, a)
  local dot = db:explain_dot(a)
  eq(dot:sub(1, 7), "digraph")
  H.contains(dot, P1_E164)
  H.raises_code(scrm.NOTFOUND, db.explain, db, 999999)
  H.raises_code(scrm.NOTFOUND, db.explain_dot, db, 999999)
  db:close()
end)

test("deterministic across files", function()
  local script = {{phone = P1}, {email = "a@example.com"}, {wechat_unionid = "oU"},
                  {phone = P1, email = "a@example.com"}, {phone = P2, wechat_unionid = "oU"}}
  local function run()
    local db = scrm.open(H.tmpname(), {clock = function() return 1 end})
    local out = {}
    for _, ids in ipairs(script) do
      local id, rep = db:observe(ids, {report = true})
      out[#out + 1] = id .. ":" .. rep.outcome .. ":" .. #rep.merged
    end
    db:close()
    return table.concat(out, " ")
  end
  eq(run(), run())
end)

test("a batch groups observations; rollback forgets them", function()
  local db = fresh()
  local ok = pcall(db.batch, db, function()
    db:observe({phone = P1})
    error("abort")
  end)
  eq(ok, false)
  eq(db:resolve("phone", P1), nil)
  local cid = db:batch(function() return db:observe({phone = P1}) end)
  eq(db:resolve("phone", P1), cid)
  db:close()
end)

test("use after close and read-only", function()
  local path = H.tmpname()
  local db = scrm.open(path)
  db:observe({phone = P1})
  db:close()
  for _, call in ipairs{function() db:observe({phone = P1}) end, function() db:kinds() end,
                        function() db:resolve("phone", P1) end, function() db:merge(1, 2) end} do
    H.raises_code(scrm.MISUSE, call)
  end
  local ro = scrm.open(path, {readonly = true})
  assert(ro:resolve("phone", P1) > 0)
  H.raises_code(scrm.READONLY, ro.observe, ro, {phone = P2})
  ro:close()
end)

test("out-of-memory paths raise NOMEM and leak nothing", function()
  local db = fresh()
  local a = db:observe({phone = P1})
  local calls = {
    function() return db:observe({phone = P2, email = "q@example.com"}, {report = true}) end,
    function() return db:explain(a) end,
    function() return db:explain_dot(a) end,
    function() return db:kinds() end,
    function() return db:normalize("phone", P1) end,
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
  -- the handle is still consistent
  eq(db:canonical(a), a)
  db:close()
end)

H.done()
