package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redisinfo"
)

// redisServer is a private redis-server process: loopback, a free port, no
// persistence.
type redisServer struct {
	cmd     *exec.Cmd
	dir     string
	url     string
	version string
	exited  chan struct{}
}

// startRedis starts redis-server (REDIS_SERVER_BIN, else PATH) and waits
// until it answers PING.
func startRedis(ctx context.Context) (*redisServer, error) {
	bin := os.Getenv("REDIS_SERVER_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, errors.New("no redis-server: set -redis-url or REDIS_URL, or install redis-server (scripts/install-deps.sh redis-server)")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "vsload-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", dir+"/redis.log")
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &redisServer{cmd: cmd, dir: dir, url: fmt.Sprintf("redis://127.0.0.1:%d/0", port), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// Polling another process until it serves, with a deadline.
		if err := rdb.Ping(ctx).Err(); err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, errors.New("redis-server did not answer PING within 10s")
		}
		select {
		case <-s.exited:
			s.stop()
			return nil, errors.New("redis-server exited at start")
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.version = "redis"
	if in, err := redisinfo.Read(ctx, rdb, "server"); err == nil && in.Fields["redis_version"] != "" {
		s.version = "redis " + in.Fields["redis_version"]
	}
	return s, nil
}

// stop kills the server, waits for it and removes its directory.
func (s *redisServer) stop() {
	_ = s.cmd.Process.Kill()
	<-s.exited
	os.RemoveAll(s.dir)
}
