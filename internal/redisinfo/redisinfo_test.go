package redisinfo

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParse(t *testing.T) {
	text := "# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\nprocess_supervised:no\r\n\r\n" +
		"# Stats\r\ntotal_connections_received:3\r\ntotal_commands_processed:120\r\n\r\n" +
		"# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:0.250000\r\nused_cpu_sys_children:9.000000\r\n\r\n" +
		"# Commandstats\r\ncmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,rejected_calls=0,failed_calls=0\r\n" +
		"cmdstat_info:calls=2,usec=40,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n"
	got, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fields["process_id"] != "4242" || got.Fields["redis_version"] != "7.0.15" || got.Fields["total_commands_processed"] != "120" {
		t.Errorf("Fields = %v, want process_id 4242, redis_version 7.0.15, total_commands_processed 120", got.Fields)
	}
	if _, ok := got.Fields["# Server"]; ok {
		t.Error("a section header is in Fields")
	}
	if n, err := got.Int("process_id"); n != 4242 || err != nil {
		t.Errorf("Int(process_id) = %d, %v; want 4242", n, err)
	}
	if _, err := got.Int("connected_clients"); err == nil {
		t.Error("Int of a field the sections lack: no error")
	}
	if got.Processed != 120 {
		t.Errorf("Processed = %d, want 120", got.Processed)
	}
	if want := 1750 * time.Millisecond; got.CPU != want {
		t.Errorf("CPU = %v, want %v (user + sys, not the children's)", got.CPU, want)
	}
	if c := got.Commands["evalsha"]; c != (Command{Calls: 12, Usec: 345}) {
		t.Errorf("evalsha = %+v, want 12 calls, 345 us", c)
	}
	if c := got.Commands["info"]; c.Calls != 2 {
		t.Errorf("info = %+v, want 2 calls", c)
	}
	if len(got.Commands) != 2 {
		t.Errorf("commands = %v, want evalsha and info", got.Commands)
	}
	if _, err := Parse("cmdstat_get:calls=x,usec=1\r\n"); err == nil {
		t.Error("Parse of a bad count: no error")
	}
	if got, _ := Parse("cmdstat_get:calls=1\r\n"); got.Processed != -1 {
		t.Errorf("Processed without INFO stats = %d, want -1", got.Processed)
	}
}
