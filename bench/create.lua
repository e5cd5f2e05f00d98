-- create.lua -- wrk script for the durable-create benchmark (bench/run.sh).
-- POST /fhir/<Type> with bodies taken in turn from a file of resources (one
-- JSON resource per line, without "id": the server assigns it). A 201 is only
-- sent once the write is committed and fsynced, so req/s is durable creates/s.
--   wrk -t2 -c32 -d10s --latency -s bench/create.lua http://HOST:PORT -- BODIES Observation
local bodies = {}
local path = "/fhir/Observation"
local i = 0
local headers = { ["Content-Type"] = "application/fhir+json" }

function init(args)
   local f = assert(io.open(args[1], "r"), "create.lua: cannot open the bodies file")
   for line in f:lines() do
      if #line > 0 then bodies[#bodies + 1] = line end
   end
   f:close()
   assert(#bodies > 0, "create.lua: no bodies")
   if args[2] then path = "/fhir/" .. args[2] end
   i = math.random(#bodies)
end

function request()
   i = i % #bodies + 1
   return wrk.format("POST", path, headers, bodies[i])
end
