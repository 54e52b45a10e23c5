-- wrk script for OwnTracks HTTP mode: one location per POST, as the apps send them.
-- AUTH (base64 of user:password) and LIMIT_U (the user) come from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. os.getenv("AUTH")
wrk.headers["X-Limit-U"] = os.getenv("LIMIT_U")
wrk.headers["X-Limit-D"] = "httpbench"
local counter = 0
request = function()
  counter = counter + 1
  local body = string.format(
    '{"_type":"location","lat":52.5,"lon":13.4,"tst":%d,"tid":"hb","batt":80}',
    1700000000 + counter)
  return wrk.format(nil, nil, nil, body)
end
