package viewerclient

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Dialer returns a Config.Dial that opens a new gRPC connection to target
// (host:port, or any target grpc.NewClient takes) with creds and then
// opts. creds is required: credentials.NewTLS for a service behind TLS
// (credentials.NewTLS(nil) checks its certificate against the system's
// roots), insecure.NewCredentials only for a local development server.
// The session token is not a dial option: Config.Token carries it on
// every call.
//
// Each call returns a fresh connection with its own socket, which the
// Client closes when it abandons it: after a network change, a socket
// opened earlier may sit on a path that no longer exists. gRPC connects
// lazily; the Client bounds the first exchange by Config.AckTimeout, so
// the dial function itself ignores its context.
func Dialer(target string, creds credentials.TransportCredentials, opts ...grpc.DialOption) func(context.Context) (*grpc.ClientConn, error) {
	all := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)
	return func(context.Context) (*grpc.ClientConn, error) {
		if creds == nil {
			return nil, fmt.Errorf("%w: Dialer needs transport credentials", ErrConfig)
		}
		cc, err := grpc.NewClient(target, all...)
		if err != nil {
			return nil, fmt.Errorf("viewerclient: dial %s: %w", target, err)
		}
		return cc, nil
	}
}
