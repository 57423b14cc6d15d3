package assemble

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// NewRedis returns the server's Redis client for url: a standalone server
// (mode "" or "standalone"), "sentinel" (a failover URL) or "cluster" (a
// Redis Cluster URL), with short timeouts, since an outage must fail calls
// fast, never hang them. The error is the URL parser's, unwrapped.
func NewRedis(mode, url string) (redis.UniversalClient, error) {
	// poolTimeout is shorter than the store's per-call timeout (1 s), so
	// that a call that finds every pooled connection busy fails with the
	// pool timeout: UNAVAILABLE naming the exhausted pool, counted in
	// vss_redis_pool_timeouts_total (go-redis's default is ReadTimeout +
	// 1 s, and the call's deadline would end the wait first, unnamed).
	const timeout, poolTimeout = time.Second, 500 * time.Millisecond
	switch mode {
	case "sentinel":
		o, err := redis.ParseFailoverURL(url)
		if err != nil {
			return nil, err
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = timeout, timeout, timeout, true
		o.PoolTimeout = poolTimeout
		return redis.NewFailoverClient(o), nil
	case "cluster":
		o, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, err
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = timeout, timeout, timeout, true
		o.PoolTimeout = poolTimeout
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = timeout, timeout, timeout, true
	o.PoolTimeout = poolTimeout
	return redis.NewClient(o), nil
}
