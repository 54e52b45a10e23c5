-- wrk script for OwnTracks HTTP mode: one location per POST, as the apps send them.
-- AUTH (base64 of user:password) and LIMIT_U (the user) come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. os.getenv("AUTH")
wrk.headers["X-Limit-U"] = os.getenv("LIMIT_U")
wrk.headers["X-Limit-D"] = "httpbench"
-- Each thread its own latitude: the server stores a fix once per device, time and position,
-- and every thread's counter starts at 1.
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
id = 0
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"_type":"location","lat":%.4f,"lon":13.4,"tst":%d,"tid":"hb","batt":80}',
    52.5 + id / 10000, 1700000000 + counter)
  return wrk.format(nil, nil, nil, body)
end
