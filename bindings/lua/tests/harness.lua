-- Tiny assert-based test harness shared by the Lua binding tests (no busted
-- needed): runs each case under pcall, prints failures, and exits non-zero
-- if any failed. Works on Lua 5.1-5.4 and LuaJIT.
local H = {}

local passed, failed, skipped = 0, 0, 0
local tmpfiles = {}

local function describe(v)
  if type(v) == "table" and v.code then
    return ("{code=%s, name=%q, message=%q}"):format(tostring(v.code), tostring(v.name),
                                                     tostring(v.message))
  end
  return tostring(v)
end
H.describe = describe

function H.test(name, fn)
  local ok, err = xpcall(fn, function(e) return debug.traceback(describe(e), 2) end)
  if ok then
    passed = passed + 1
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. "\n  " .. tostring(err):gsub("\n", "\n  "))
  end
end

function H.skip(name, why)
  skipped = skipped + 1
  print("skip " .. name .. " (" .. why .. ")")
end

function H.eq(got, want, what)
  if got ~= want then
    error(("%s: expected %s, got %s"):format(what or "value", describe(want), describe(got)), 2)
  end
end

-- Call fn(...) and return the error it raises (fails if it does not raise).
function H.raises(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error, but the call succeeded", 2) end
  return err
end

-- Call fn(...) and check it raises a scrm error table with `code`; return it.
function H.raises_code(code, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error("expected an error with code " .. code .. ", but the call succeeded", 2) end
  if type(err) ~= "table" or err.code ~= code then
    error(("expected a scrm error with code %d, got %s"):format(code, describe(err)), 2)
  end
  return err
end

function H.contains(s, part, what)
  if type(s) ~= "string" or not s:find(part, 1, true) then
    error(("%s: %q does not contain %q"):format(what or "string", tostring(s), part), 2)
  end
end

-- A fresh file name (the file does not exist); removed, with -wal/-shm, by done().
function H.tmpname()
  local name = os.tmpname()
  os.remove(name)
  name = name .. ".scrm.db"
  tmpfiles[#tmpfiles + 1] = name
  return name
end

function H.done()
  for _, f in ipairs(tmpfiles) do
    os.remove(f); os.remove(f .. "-wal"); os.remove(f .. "-shm"); os.remove(f .. "-journal")
  end
  collectgarbage("collect")
  print(("%d passed, %d failed%s"):format(passed, failed,
        skipped > 0 and (", " .. skipped .. " skipped") or ""))
  os.exit(failed == 0 and 0 or 1, true)
end

return H
