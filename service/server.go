// Package service is the gRPC layer of the Viewer Session Service: request
// validation, auth, proto <-> domain conversion and the one error-to-status
// map. It holds no business rules; those live in sessionmgr.
package service

import (
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// Server implements viewersession.v1.ViewerSessionService.
// RPCs not built yet answer UNIMPLEMENTED (from the embedded type).
type Server struct {
	vspb.UnimplementedViewerSessionServiceServer
}

var _ vspb.ViewerSessionServiceServer = (*Server)(nil)

// New returns a Server.
func New() *Server {
	return &Server{}
}
