-- Stores a value only if no invalidation happened since the load that produced it began.
-- KEYS[1] the group's fence hash, KEYS[2] the entry
-- ARGV[1] the entry's fence field, ARGV[2] its token as read before the load, ARGV[3] the group-wide ('*') token
-- as read then, ARGV[4] the value, ARGV[5] its TTL in seconds
local cur = redis.call('HMGET', KEYS[1], ARGV[1], '*')
if (cur[1] or '') ~= ARGV[2] or (cur[2] or '') ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
return 1
