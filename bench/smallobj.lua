-- Copied from ../shared/bench/smallobj.lua (2026-11-22, sha256 cf7269d87bd5d84a); unchanged otherwise.
-- wrk script for s3bench.sh: walk a list of pre-generated request targets.
-- usage: wrk ... -s smallobj.lua URL -- METHOD URLBASE [BODYFILE]
--   thread t reads URLBASE.<t> (one "path?query" per line, one distinct key
--   per line) and sends them in order; when a thread runs past its list it
--   wraps around (counted in "wraps"). PUT bodies are BODYFILE's bytes.
--   done() prints one WRKRESULT line and, if $WRK_RESULT_FILE is set, writes
--   per-thread counters ("id issued wraps") there.

local threads = {}
local nthreads = 0

function setup(thread)
   thread:set("id", nthreads)
   nthreads = nthreads + 1
   table.insert(threads, thread)
end

function init(args)
   method = args[1]
   local base = args[2]
   local bodyfile = args[3]
   paths = {}
   for line in io.lines(base .. "." .. id) do
      paths[#paths + 1] = line
   end
   n = #paths
   if n == 0 then
      error("no request targets in " .. base .. "." .. id)
   end
   body = nil
   if method == "PUT" and bodyfile and bodyfile ~= "" and bodyfile ~= "-" then
      local f = assert(io.open(bodyfile, "rb"))
      body = f:read("*a")
      f:close()
   end
   i = 0
   issued = 0
   wraps = 0
   hdrs = {}
end

function request()
   if not paths then
      -- a Lua state where init() never ran (older wrk validates the script
      -- in its main state): hand it a harmless request.
      return wrk.format("GET", "/")
   end
   -- note: wrk 4.x validates the script by calling request() once on
   -- thread 0 after init(); that target is consumed but never sent
   -- (presign.py getlist HEAD-checks the first keys for this reason).
   i = i + 1
   if i > n then
      i = 1
      wraps = wraps + 1
   end
   issued = issued + 1
   return wrk.format(method, paths[i], hdrs, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   local per = {}
   local total_wraps = 0
   for _, t in ipairs(threads) do
      per[#per + 1] = string.format("%d %d %d", t:get("id"), t:get("issued"), t:get("wraps"))
      total_wraps = total_wraps + t:get("wraps")
   end
   local secs = summary.duration / 1e6
   io.write(string.format(
      "WRKRESULT requests=%d duration_s=%.3f rps=%.1f bytes_read=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f non2xx=%d connect_err=%d read_err=%d write_err=%d timeout_err=%d wraps=%d\n",
      summary.requests, secs, summary.requests / secs, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      e.status, e.connect, e.read, e.write, e.timeout, total_wraps))
   local out = os.getenv("WRK_RESULT_FILE")
   if out then
      local f = assert(io.open(out, "w"))
      for _, line in ipairs(per) do
         f:write(line .. "\n")
      end
      f:close()
   end
end
