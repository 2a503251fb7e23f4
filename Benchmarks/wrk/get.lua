math.randomseed(7)
request = function()
  return wrk.format("GET", "/store/carts/cart_" .. math.random(0, 199) .. "/payment-sessions")
end
