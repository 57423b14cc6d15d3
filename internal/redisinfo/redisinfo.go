// Package redisinfo reads what a redis-server reports of its own work
// (INFO stats, commandstats and cpu), for the benchmarks that count the
// commands and CPU an operation costs the server, and any other field
// one reads (a server's process id, its clients, its version). One
// parser for all of them.
package redisinfo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Command is one command's line of INFO commandstats.
type Command struct {
	Calls int64
	Usec  int64 // microseconds spent in it, in all
}

// Info is what one INFO command returned.
type Info struct {
	// Commands is INFO commandstats by command name (commands run inside
	// scripts count too), INFO's own included.
	Commands map[string]Command
	// Processed is INFO stats' total_commands_processed (-1 when the
	// section was not asked for).
	Processed int64
	// CPU is INFO cpu's used_cpu_user + used_cpu_sys: redis-server's own
	// CPU time.
	CPU time.Duration
	// Fields is every "name:value" line of the sections asked for, as
	// text: the fields read once, with no type of their own here
	// (process_id, connected_clients, redis_version).
	Fields map[string]string
}

// Int is the integer field name (Fields), or an error when the sections
// read do not have it.
func (in Info) Int(name string) (int, error) {
	v, ok := in.Fields[name]
	if !ok {
		return 0, fmt.Errorf("INFO has no %s", name)
	}
	return strconv.Atoi(v)
}

// Read runs one INFO for sections (stats, commandstats, cpu, ...; none: the
// server's default set) and parses it.
func Read(ctx context.Context, rdb redis.UniversalClient, sections ...string) (Info, error) {
	text, err := rdb.Info(ctx, sections...).Result()
	if err != nil {
		return Info{}, err
	}
	return Parse(text)
}

// Parse parses INFO's text.
func Parse(text string) (Info, error) {
	in := Info{Commands: map[string]Command{}, Processed: -1, Fields: map[string]string{}}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		k, v, ok := strings.Cut(line, ":")
		if ok && !strings.HasPrefix(line, "#") {
			in.Fields[k] = v
		}
		if k == "total_commands_processed" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return in, fmt.Errorf("INFO stats: %q: %w", line, err)
			}
			in.Processed = n
			continue
		}
		if k == "used_cpu_user" || k == "used_cpu_sys" {
			sec, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return in, fmt.Errorf("INFO cpu: %q: %w", line, err)
			}
			in.CPU += time.Duration(sec * float64(time.Second))
			continue
		}
		// cmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,...
		rest, ok := strings.CutPrefix(line, "cmdstat_")
		if !ok {
			continue
		}
		name, fields, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		var c Command
		for kv := range strings.SplitSeq(fields, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "calls", "usec":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return in, fmt.Errorf("INFO commandstats: %q: %w", line, err)
				}
				if k == "calls" {
					c.Calls = n
				} else {
					c.Usec = n
				}
			}
		}
		in.Commands[name] = c
	}
	return in, nil
}
