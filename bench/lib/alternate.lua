-- wrk script: alternate GET /a and GET /b (the web workload's planted 2:1 split).
local i = 0
request = function()
    i = i + 1
    if i % 2 == 0 then
        return wrk.format("GET", "/a")
    end
    return wrk.format("GET", "/b")
end
