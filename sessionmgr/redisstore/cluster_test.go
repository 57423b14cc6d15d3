package redisstore_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
)

// startCluster starts a Redis Cluster of three masters on loopback, each a
// private redis-server in a temporary directory that the test kills when
// it ends, and returns a client of it, closed before the servers stop.
func startCluster(t *testing.T) *redis.ClusterClient {
	t.Helper()
	cli := redisCLI(t)
	var addrs []string
	for range 3 {
		srv := redistest.Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(redistest.FreePort(t)),
			"--cluster-node-timeout", "5000",
		)
		addrs = append(addrs, srv.Addr())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		waitClusterOK(ctx, t, addr)
	}

	rdb := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 addrs,
		DialTimeout:           time.Second,
		ReadTimeout:           2 * time.Second,
		WriteTimeout:          2 * time.Second,
		ContextTimeoutEnabled: true,
		PoolSize:              32,
	})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// redisCLI returns the redis-cli binary: next to REDIS_SERVER_BIN, or on
// PATH. Without one the test fails in CI and is skipped elsewhere, as
// redistest does for redis-server.
func redisCLI(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("REDIS_SERVER_BIN"); b != "" {
		if cli := filepath.Join(filepath.Dir(b), "redis-cli"); fileExists(cli) {
			return cli
		}
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-cli not found and CI is set")
		}
		t.Skip("redis-cli not found")
	}
	return cli
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// waitClusterOK polls the node at addr until it sees the whole cluster up:
// every slot assigned, three nodes known, state ok. It waits on other
// processes (the nodes gossiping), so it polls, until ctx's deadline.
func waitClusterOK(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var info string
	for {
		info, _ = c.ClusterInfo(ctx).Result()
		if strings.Contains(info, "cluster_state:ok") &&
			strings.Contains(info, "cluster_slots_assigned:16384") &&
			strings.Contains(info, "cluster_known_nodes:3") {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster node %s not ready: %v; last CLUSTER INFO:\n%s", addr, ctx.Err(), info)
		case <-tick.C:
		}
	}
}
