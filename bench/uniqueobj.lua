-- bench/uniqueobj.lua: bench/smallobj.lua, except that no two PUT bodies are the same (the
-- first 16 bytes of each are the wrk thread's id and its request count in hex), so a
-- content-addressed store cannot deduplicate them. Used by bench/inline.sh (WRK_SCRIPT).
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "smallobj.lua")
local same_body_request = request

function request()
   if body and #body >= 16 then
      body = string.format("%08x%08x", id, issued) .. body:sub(17)
   end
   return same_body_request()
end
