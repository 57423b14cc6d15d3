package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/metadata"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// maxPages bounds ListSessions paging (500 sessions a page).
const maxPages = 100

// sessions runs `viewerctl sessions`: the channel's sessions, newest first.
func sessions(ctx context.Context, cfg sessionsConfig, stdout io.Writer) error {
	conn, err := dialConfig(cfg.commonConfig)
	if err != nil {
		return fmt.Errorf("%w: -addr %q: %w", errUsage, cfg.Addr, err)
	}
	defer conn.Close()
	api := vspb.NewViewerSessionServiceClient(conn)
	ch := &vspb.Channel{Name: cfg.Channel, Region: cfg.Region}
	if isARN(cfg.Channel) {
		ch = &vspb.Channel{Arn: cfg.Channel}
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cfg.APIKey)
	var list []*vspb.Session
	token := ""
	for range maxPages {
		cctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		resp, err := api.ListSessions(cctx, &vspb.ListSessionsRequest{Channel: ch, PageSize: 500, PageToken: token})
		cancel()
		if err != nil {
			return withHint(cfg.Addr, rpcError("list sessions", err))
		}
		for _, s := range resp.GetSessions() {
			if cfg.All || !ended(s.GetState()) {
				list = append(list, s)
			}
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if len(list) == 0 {
		what := "live sessions"
		if cfg.All {
			what = "sessions"
		}
		fmt.Fprintf(stdout, "no %s on channel %s\n", what, cfg.Channel)
		return nil
	}
	return writeSessions(stdout, list, time.Local)
}

func ended(s vspb.SessionState) bool {
	return s == vspb.SessionState_SESSION_STATE_FAILED || s == vspb.SessionState_SESSION_STATE_CLOSED
}
