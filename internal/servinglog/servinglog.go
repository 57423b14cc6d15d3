// Package servinglog reads the addresses a server process bound from its
// "serving" log line. Tests and benchmarks start the server binary on port
// 0 and read the ports back, instead of picking ports that were free a
// moment ago and that another process may take before the server binds
// them (CI failed so: "listen tcp ...: bind: address already in use").
// The line is logged at INFO: bench, which runs the server at WARN, picks
// ports and starts the server again when one was taken.
package servinglog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
)

// Addrs are the addresses of the server's listeners; Web is empty when
// the web port is off.
type Addrs struct {
	GRPC string `json:"grpc_addr"`
	HTTP string `json:"http_addr"`
	Web  string `json:"web_addr"`
}

// Find returns the addresses of the first "serving" line of log, written
// by the server with -log-format json or text, and whether there is one.
func Find(log []byte) (Addrs, bool) {
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte("{")) {
			var rec struct {
				Msg string `json:"msg"`
				Addrs
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving" && rec.GRPC != "" {
				return rec.Addrs, true
			}
			continue
		}
		if a, ok := fromText(string(line)); ok {
			return a, true
		}
	}
	return Addrs{}, false
}

// fromText reads a slog text line: space-separated key=value pairs, with
// values that hold no space (addresses, "serving") unquoted.
func fromText(line string) (Addrs, bool) {
	var a Addrs
	serving := false
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "msg":
			serving = v == "serving"
		case "grpc_addr":
			a.GRPC = v
		case "http_addr":
			a.HTTP = v
		case "web_addr":
			a.Web = strings.Trim(v, `"`)
		}
	}
	return a, serving && a.GRPC != ""
}
