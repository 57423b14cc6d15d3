package redistest

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// ScriptCounter is a go-redis hook (add it with AddHook) that counts the
// scripts (EVAL, EVALSHA) a client sends: alone (Singles), and in
// pipelines, one round trip each (Pipelines: those that carry any script;
// Piped: the scripts in them). Other commands are not counted. OnPipeline,
// when set before the hook is added, is called with a pipeline's script
// count after it ran.
type ScriptCounter struct {
	Singles, Pipelines, Piped atomic.Int64
	OnPipeline                func(scripts int)
}

func isScript(cmd redis.Cmder) bool {
	name := strings.ToLower(cmd.Name())
	return name == "eval" || name == "evalsha"
}

// DialHook implements redis.Hook.
func (c *ScriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (c *ScriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if isScript(cmd) {
			c.Singles.Add(1)
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook implements redis.Hook.
func (c *ScriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		scripts := 0
		for _, cmd := range cmds {
			if isScript(cmd) {
				scripts++
			}
		}
		if scripts > 0 {
			c.Pipelines.Add(1)
			c.Piped.Add(int64(scripts))
		}
		err := next(ctx, cmds)
		if scripts > 0 && c.OnPipeline != nil {
			c.OnPipeline(scripts)
		}
		return err
	}
}
