-- wrk script for examples/jobs_service.rs: POST /jobs, then GET /jobs/{id} of a job this thread
-- posted. Each wrk thread keeps the ids its POSTs were answered with; a connection's next request
-- GETs the oldest of them, or POSTs a new job if there is none. So about half the requests are
-- POSTs and half GETs, and each GET waits for a worker to finish its job.
--   wrk -t2 -c50 -d10s --latency -s examples/jobs_service.lua http://127.0.0.1:3000

local ids = {}
local first, last = 1, 0

request = function()
  if first <= last then
    local id = ids[first]
    ids[first] = nil
    first = first + 1
    return wrk.format("GET", "/jobs/" .. id)
  end
  return wrk.format("POST", "/jobs", { ["Content-Type"] = "application/json" },
    '{"task":"resize","width":640,"height":480}')
end

response = function(status, headers, body)
  local id = string.match(body, '^{"id":(%d+)}$')
  if id then
    last = last + 1
    ids[last] = id
  end
end
