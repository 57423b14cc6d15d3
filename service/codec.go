package service

import (
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Codec is the server's message codec: grpc's proto codec, except that a
// request that does not decode (malformed bytes, invalid UTF-8 in a
// string) is not refused by grpc itself (INTERNAL, no ErrorInfo, before
// any interceptor, so never counted) but handed on empty and marked; the
// Interceptors then refuse it with INVALID_ARGUMENT MALFORMED_REQUEST,
// counted and logged like any refusal. Install it with
// grpc.ForceServerCodecV2, always together with the Interceptors.
func Codec() encoding.CodecV2 { return codec{base: encoding.GetCodecV2("proto")} }

type codec struct{ base encoding.CodecV2 }

// malformed holds the decoding error of each marked request until the
// interceptor takes it (right after decoding, on the same call).
var malformed sync.Map // request message -> error

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.base.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	proto.Reset(m)
	malformed.Store(v, err)
	return nil
}

func (c codec) Name() string { return c.base.Name() }

// decodeError takes the mark of a request that did not decode: the
// status to refuse it with, or nil.
func decodeError(req any) error {
	v, ok := malformed.LoadAndDelete(req)
	if !ok {
		return nil
	}
	desc := "the request does not decode as protobuf"
	if e, ok := v.(error); ok {
		desc += ": " + e.Error()
	}
	return withDetails(codes.InvalidArgument, desc,
		&errdetails.ErrorInfo{Domain: Domain, Reason: "MALFORMED_REQUEST"})
}

// checkedStream refuses stream messages that did not decode. Its
// RecvMsg has a pointer receiver: a value one adds a wrapper frame to the
// stack of every parked Connect receiver.
type checkedStream struct{ grpc.ServerStream }

func (s *checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return decodeError(m)
}
