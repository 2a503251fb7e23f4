math.randomseed(11)
local providers = {"manual", "stripe"}
request = function()
  local body = '{"provider_id":"' .. providers[math.random(1, 2)] .. '"}'
  return wrk.format("POST", "/store/carts/cart_" .. math.random(0, 199) .. "/payment-session", {["Content-Type"]="application/json"}, body)
end
