-- Core of the Lua binding: module table, versions, errors as tables, the
-- database handle (open/close/__gc/__close), batches, clock and log hooks.
local H = require "harness"
local scrm = require "scrm"
local test, eq = H.test, H.eq

local FIXED = 1767225600000 -- 2026-01-01T00:00:00Z

test("module table and no globals", function()
  eq(type(scrm), "table")
  eq(rawget(_G, "scrm"), nil, "global scrm")
  eq(package.loaded.scrm, scrm)
  for name, code in pairs{OK = 0, ERROR = 1, MISUSE = 2, INVALID = 3, NOTFOUND = 4, EXISTS = 5,
                          CONFLICT = 6, STATE = 7, BUSY = 8, NOMEM = 9, IO = 10, CORRUPT = 11,
                          SCHEMA = 12, RANGE = 13, PARSE = 14, READONLY = 15, LIMIT = 16,
                          EVAL = 17, DUPLICATE = 18} do
    eq(scrm[name], code, "scrm." .. name)
  end
  eq(scrm.LOG_ERROR, 1); eq(scrm.LOG_DEBUG, 4)
  eq(scrm.errstr(scrm.NOTFOUND), "not found")
  eq(scrm.INT64_IDS, _VERSION ~= "Lua 5.1" and _VERSION ~= "Lua 5.2")
end)

test("version", function()
  local v = scrm.version()
  local major, minor, patch = v:match("^(%d+)%.(%d+)%.(%d+)")
  assert(major, "version looks like x.y.z: " .. v)
  eq(scrm.version_number(), major * 10000 + minor * 100 + patch, "version_number")
  assert(scrm.schema_version() >= 1, "schema version")
end)

test("open :memory:, path, info, tostring", function()
  local db = scrm.open(":memory:")
  eq(db:path(), ":memory:")
  eq(db:is_closed(), false)
  H.contains(tostring(db), ":memory:")
  local info = db:info()
  eq(info.path, ":memory:")
  eq(info.schema_version, scrm.schema_version())
  eq(info.library_version, scrm.version())
  eq(type(info.tables), "table")
  local n = 0
  for name, rows in pairs(info.tables) do
    eq(type(name), "string"); eq(type(rows), "number"); n = n + 1
  end
  assert(n > 0, "info lists tables")
  db:close()
  eq(db:is_closed(), true)
  H.contains(tostring(db), "closed")
end)

test("open a file, reopen it, read-only refuses writes", function()
  local path = H.tmpname()
  local db = scrm.open(path, {busy_timeout_ms = 100})
  eq(db:path(), path)
  eq(db:info().path, path)
  db:close()
  local ro = scrm.open(path, {readonly = true})
  eq(ro:info().schema_version, scrm.schema_version())
  H.raises_code(scrm.READONLY, ro.begin, ro)
  ro:close()
end)

test("errors are tables with code, name and message", function()
  local path = H.tmpname()
  local err = H.raises_code(scrm.NOTFOUND, scrm.open, path, {create = false})
  eq(err.name, "not found")
  eq(type(err.message), "string")
  H.contains(err.message, path, "message names the file")
  eq(getmetatable(err), scrm.error_mt)
  local s = tostring(err)
  H.contains(s, "scrm: ")
  H.contains(s, path)
  H.contains(s, "(not found)")
  -- the file was not created
  eq(io.open(path, "rb"), nil, "file created")
end)

test("a garbage file is CORRUPT", function()
  local path = H.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(("this is not a database file. "):rep(200))
  f:close()
  local err = H.raises_code(scrm.CORRUPT, scrm.open, path)
  eq(err.name, "database is corrupt")
end)

test("bad arguments raise ordinary Lua errors", function()
  local err = H.raises(scrm.open, ":memory:", {readOnly = true})
  eq(type(err), "string"); H.contains(err, "unknown option 'readOnly'")
  H.contains(H.raises(scrm.open, ":memory:", {busy_timeout_ms = 1.5}), "busy_timeout_ms")
  H.contains(H.raises(scrm.open, ":memory:", {clock = 42}), "clock")
  H.contains(H.raises(scrm.open, "a\0b"), "zero byte")
  H.raises(scrm.open)
  H.raises_code(scrm.INVALID, scrm.open, "")
  H.raises_code(scrm.RANGE, scrm.open, ":memory:", {busy_timeout_ms = -1})
end)

test("use after close raises; close is idempotent", function()
  local db = scrm.open(":memory:")
  db:close()
  db:close()
  for _, m in ipairs{"path", "now", "info", "begin", "commit", "rollback", "batch_depth"} do
    local err = H.raises_code(scrm.MISUSE, db[m], db)
    eq(err.message, "database handle is closed", m)
    H.contains(tostring(err), "scrm: database handle is closed")
  end
  H.raises_code(scrm.MISUSE, db.batch, db, function() end)
  -- the wrong self is a plain argument error
  H.contains(H.raises(db.path, {}), "scrm.db")
end)

local test54 = _VERSION == "Lua 5.4" and test or function(name) H.skip(name, _VERSION) end
test54("<close> closes (Lua 5.4)", function()
  -- load() keeps the 5.4-only syntax out of this file's own parse.
  local chunk = assert(load([[
    local scrm = ...
    local outer
    do
      local db <close> = scrm.open(":memory:")
      outer = db
      assert(not db:is_closed())
    end
    assert(outer:is_closed(), "closed at the end of the block")
    local ok = pcall(function()
      local db <close> = scrm.open(":memory:")
      outer = db
      error("boom")
    end)
    assert(not ok and outer:is_closed(), "closed when the block raises")
  ]]))
  chunk(scrm)
end)

test("__gc closes the handle (and releases its lock)", function()
  local path = H.tmpname()
  local other = scrm.open(path, {busy_timeout_ms = 0})
  do
    local db = scrm.open(path, {busy_timeout_ms = 0})
    db:begin() -- holds the write lock until the handle is closed
    H.raises_code(scrm.BUSY, other.begin, other)
    db = nil
  end
  collectgarbage("collect"); collectgarbage("collect")
  other:begin() -- the collected handle rolled back and let go
  other:rollback()
  other:close()
  for _ = 1, 50 do scrm.open(":memory:", {clock = function() return FIXED end}) end
  collectgarbage("collect")
end)

test("begin/commit/rollback and batch_depth", function()
  local db = scrm.open(":memory:")
  eq(db:batch_depth(), 0)
  db:begin(); db:begin()
  eq(db:batch_depth(), 2)
  db:rollback(); db:commit()
  eq(db:batch_depth(), 0)
  local err = H.raises_code(scrm.MISUSE, db.commit, db)
  H.contains(err.message, "no batch is open")
  db:close()
end)

test("batch commits and passes results through", function()
  local db = scrm.open(":memory:")
  local a, b = db:batch(function(x, y)
    eq(db:batch_depth(), 1)
    db:kind_set{name = "shop_nick", normalizer = "casefold", priority = 50, limit = 0}
    return x + y, "done"
  end, 1, 2)
  eq(a, 3); eq(b, "done")
  eq(select("#", db:batch(function() end)), 0)
  local many, unpack = {}, table.unpack or unpack
  for i = 1, 3000 do many[i] = i end
  local clocked = scrm.open(":memory:", {clock = function() return FIXED end})
  local back = {clocked:batch(function(...) clocked:now(); return ... end, unpack(many))}
  eq(#back, 3000); eq(back[3000], 3000)
  eq(clocked:now(), FIXED, "hooks still work after a deep stack")
  clocked:close()
  eq(db:batch_depth(), 0)
  eq(db:kind_get("shop_nick").name, "shop_nick")
  db:close()
end)

test("batch rolls back and re-raises the same error", function()
  local db = scrm.open(":memory:")
  local boom = {"boom"}
  local ok, err = pcall(db.batch, db, function()
    db:kind_set{name = "shop_nick", normalizer = "casefold", priority = 50, limit = 0}
    eq(db:kind_get("shop_nick").name, "shop_nick")
    error(boom)
  end)
  eq(ok, false); eq(err, boom, "the very error value")
  eq(db:batch_depth(), 0)
  local k, e = db:kind_get("shop_nick")
  eq(k, nil, "rolled back"); eq(e.code, scrm.NOTFOUND)
  -- a library error inside propagates as its table
  err = H.raises_code(scrm.PARSE, db.batch, db, function() db:kind_set('{"name": ') end)
  eq(db:batch_depth(), 0)
  -- a function that closes the batch itself is refused and rolled back
  err = H.raises_code(scrm.MISUSE, db.batch, db, function() db:commit() end)
  H.contains(err.message, "unbalanced")
  err = H.raises_code(scrm.MISUSE, db.batch, db, function() db:begin() end)
  eq(db:batch_depth(), 0)
  -- nested batches are savepoints: the inner one rolls back alone
  db:batch(function()
    db:kind_set{name = "outer_k", normalizer = "trim", priority = 60, limit = 0}
    pcall(db.batch, db, function()
      db:kind_set{name = "inner_k", normalizer = "trim", priority = 61, limit = 0}
      error("inner")
    end)
  end)
  assert(db:kind_get("outer_k"), "outer kept")
  eq(db:kind_get("inner_k"), nil, "inner rolled back")
  db:close()
end)

test("fake clock", function()
  local t = FIXED
  local db = scrm.open(":memory:", {clock = function() return t end})
  eq(db:now(), FIXED)
  if scrm.INT64_IDS then eq(math.type(db:now()), "integer") end
  t = t + 1500.7
  eq(db:now(), FIXED + 1500, "fractional ms dropped")
  db:set_clock(nil)
  assert(math.abs(db:now() - os.time() * 1000) < 5000, "real time again")
  db:set_clock(function() return 42 end)
  eq(db:now(), 42)
  db:close()
end)

test("an error in the clock is raised after the call, not through C", function()
  local fail = false
  local db = scrm.open(":memory:", {clock = function()
    if fail then error("clock broke") end
    return FIXED
  end})
  fail = true
  local err = H.raises(db.now, db)
  H.contains(tostring(err), "clock broke")
  fail = false
  eq(db:now(), FIXED, "handle still usable")
  db:set_clock(function() return "soon" end)
  H.contains(H.raises(db.now, db), "the clock returned string")
  db:set_clock(function() return db:now() end) -- re-entry
  local e = H.raises_code(scrm.MISUSE, db.now, db)
  H.contains(e.message, "callback called back")
  db:set_clock(function() coroutine.yield() end)
  H.raises(db.now, db)
  db:close()
end)

test("the clock runs on the calling coroutine", function()
  local db = scrm.open(":memory:", {clock = function() return FIXED end})
  local co = coroutine.wrap(function() return db:now() end)
  eq(co(), FIXED)
  co = nil
  collectgarbage("collect")
  eq(db:now(), FIXED)
  db:close()
end)

test("log callback", function()
  local lines = {}
  local db = scrm.open(":memory:", {log_level = scrm.LOG_DEBUG,
    log = function(level, msg) lines[#lines + 1] = {level, msg} end})
  local opened = false
  for _, l in ipairs(lines) do
    eq(type(l[1]), "number"); eq(type(l[2]), "string")
    if l[1] == scrm.LOG_INFO and l[2]:find("opened", 1, true) then opened = true end
  end
  assert(opened, "the open was logged at LOG_INFO")
  local n = #lines
  pcall(db.commit, db) -- a failed call is logged at LOG_DEBUG
  assert(#lines > n, "error logged")
  eq(lines[#lines][1], scrm.LOG_DEBUG)
  -- a failing log callback surfaces after the call
  db:set_log(function() error("log broke") end, scrm.LOG_DEBUG)
  local err = H.raises(db.commit, db)
  H.contains(tostring(err), "log broke")
  db:set_log(nil)
  H.raises_code(scrm.MISUSE, db.commit, db)
  H.raises_code(scrm.RANGE, db.set_log, db, print, 9)
  db:close()
end)

test("an error in a hook during open closes and raises", function()
  local err = H.raises(scrm.open, ":memory:", {log = function() error("nope") end})
  H.contains(tostring(err), "nope")
end)

test("test_alloc_fail gives NOMEM and frees everything", function()
  local db = scrm.open(":memory:")
  db:test_alloc_fail(1)
  H.raises_code(scrm.NOMEM, db.info, db)
  db:test_alloc_fail(0)
  assert(db:info().tables)
  db:close()
end)

H.done()
