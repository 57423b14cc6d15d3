package service

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/probe"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// WithProber runs ProbeChannel with p (default: a Prober on the Server's
// Manager with probe's default Config).
func WithProber(p *probe.Prober) Option { return func(s *Server) { s.prober = p } }

// ProbeChannel implements the RPC: auth, validation, the per-channel probe
// rate, then one probe (package probe), whose slot on the channel and
// clientId come from the Manager.
func (s *Server) ProbeChannel(ctx context.Context, req *vspb.ProbeChannelRequest) (*vspb.ProbeChannelResponse, error) {
	if _, err := s.auth.backend(ctx, s.m); err != nil {
		return nil, err
	}
	deadline, err := validateProbe(req)
	if err != nil {
		return nil, err
	}
	ch, err := s.m.ResolveChannel(ctx, channelRefFromProto(req.GetChannel()))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	if err := s.allowProbe(ctx, ch.ARN); err != nil {
		return nil, err
	}
	p, err := s.probes()
	if err != nil {
		return nil, s.status(ctx, err)
	}
	res, err := p.Probe(ctx, ch, deadline)
	if err != nil {
		return nil, toStatus(ctx, s.log, err, "channel", ch.ARN)
	}
	return probeToProto(res), nil
}

// validateProbe checks a ProbeChannel request and returns its deadline.
func validateProbe(req *vspb.ProbeChannelRequest) (time.Duration, error) {
	c := req.GetChannel()
	if c == nil {
		return 0, invalidField("channel", "required")
	}
	if c.GetArn() == "" && c.GetName() == "" {
		return 0, invalidField("channel", "set arn, or name (and region)")
	}
	d := req.GetDeadline()
	if d == nil {
		return probe.DefaultDeadline, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, invalidField("deadline", "not a valid duration")
	}
	deadline := d.AsDuration()
	if deadline < probe.MinDeadline || deadline > probe.MaxDeadline {
		return 0, invalidField("deadline", fmt.Sprintf("%v is outside %v..%v", deadline, probe.MinDeadline, probe.MaxDeadline))
	}
	return deadline, nil
}

// probes returns the Server's Prober, made on first use when none was
// given.
func (s *Server) probes() (*probe.Prober, error) {
	s.proberOnce.Do(func() {
		if s.prober == nil {
			s.prober, s.proberErr = probe.New(s.m, probe.Config{}, probe.WithLogger(s.log))
		}
	})
	return s.prober, s.proberErr
}

// allowProbe applies the probe rate of a channel, shared by every replica
// when the Server has a shared RateLimiter.
func (s *Server) allowProbe(ctx context.Context, channelARN string) error {
	l := s.limits
	if d := s.take(ctx, "probe:"+channelARN, l.ProbesPerSecond, l.ProbeBurst); d > 0 {
		return quotaExceeded("RATE_LIMITED", "channel:"+channelARN,
			fmt.Sprintf("at most %g ProbeChannel calls per second per channel (burst %d)", l.ProbesPerSecond, l.ProbeBurst), max(d, 10*time.Millisecond))
	}
	return nil
}

// candidateTypes pairs probe's candidate types with the API's.
var candidateTypes = map[probe.CandidateType]vspb.IceCandidateType{
	probe.Host:  vspb.IceCandidateType_ICE_CANDIDATE_TYPE_HOST,
	probe.Srflx: vspb.IceCandidateType_ICE_CANDIDATE_TYPE_SRFLX,
	probe.Prflx: vspb.IceCandidateType_ICE_CANDIDATE_TYPE_PRFLX,
	probe.Relay: vspb.IceCandidateType_ICE_CANDIDATE_TYPE_RELAY,
}

func probeToProto(r probe.Result) *vspb.ProbeChannelResponse {
	return &vspb.ProbeChannelResponse{
		ClientId:           r.ClientID,
		ConnectLatency:     durationpb.New(r.Connect),
		AnswerLatency:      durationpb.New(r.Answer),
		FirstPacketLatency: durationpb.New(r.FirstPacket),
		Codec:              r.Codec,
		IcePath: &vspb.IcePath{
			LocalType:     candidateTypes[r.Path.Local],
			RemoteType:    candidateTypes[r.Path.Remote],
			Protocol:      r.Path.Protocol,
			RelayProtocol: r.Path.RelayProtocol,
		},
		Elapsed: durationpb.New(r.Elapsed),
	}
}
