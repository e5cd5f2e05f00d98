-- read.lua -- wrk script for the read-by-id benchmark (bench/run.sh).
-- GET a random path from a list file (one "/fhir/Type/id" per line); the same
-- list and the same per-thread random sequence are used against hortus and
-- against nginx serving the same bytes, so both see the same mix of resources.
--   wrk -t2 -c32 -d10s --latency -s bench/read.lua http://HOST:PORT -- PATHS [TOKEN]
-- With TOKEN every request carries "Authorization: Bearer TOKEN" (bench/auth.sh).
local paths = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("seed", counter)
end

function init(args)
   local f = assert(io.open(args[1], "r"), "read.lua: cannot open the paths file")
   for line in f:lines() do
      if #line > 0 then paths[#paths + 1] = line end
   end
   f:close()
   assert(#paths > 0, "read.lua: no paths")
   if args[2] then wrk.headers["Authorization"] = "Bearer " .. args[2] end
   math.randomseed(seed or 1)
end

function request()
   return wrk.format("GET", paths[math.random(#paths)])
end
