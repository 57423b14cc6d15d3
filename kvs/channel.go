package kvs

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/smithy-go"
)

// ChannelRef names a signaling channel: by ARN, or by Name in Region (the
// client's default region when empty). With an ARN, Name and Region are
// ignored; the region is the ARN's.
type ChannelRef struct {
	ARN, Name, Region string
}

// Channel is a resolved signaling channel: its identity, its message TTL (how
// long KVS keeps undelivered messages, which bounds clientId reuse) and its
// viewer endpoints.
type Channel struct {
	ARN, Name, Region string
	// MessageTTL is the channel's SingleMasterConfiguration.MessageTtlSeconds
	// (0 when KVS did not say).
	MessageTTL time.Duration
	// WSSEndpoint is the signaling WebSocket endpoint for viewers (wss://...).
	WSSEndpoint string
	// HTTPSEndpoint is the channel's HTTPS endpoint (GetIceServerConfig).
	HTTPSEndpoint string
}

var (
	channelNameRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,256}$`)
	channelARNRE  = regexp.MustCompile(`^arn:aws[a-z-]*:kinesisvideo:([a-z0-9-]+):[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+$`)
)

// parseChannelARN returns the region of a signaling channel ARN.
func parseChannelARN(arn string) (region string, err error) {
	if len(arn) > 1024 {
		return "", fmt.Errorf("kvs: %w: channel ARN longer than 1024", ErrInvalidArgument)
	}
	m := channelARNRE.FindStringSubmatch(arn)
	if m == nil {
		return "", fmt.Errorf("kvs: %w: malformed channel ARN %q", ErrInvalidArgument, arn)
	}
	return m[1], nil
}

// ResolveChannel returns the channel ref names, with its viewer endpoints.
// A name is turned into an ARN by DescribeSignalingChannel, which also gives
// MessageTTL; with only an ARN the channel is described once (by ARN) for
// MessageTTL. Then GetSignalingChannelEndpoint (role VIEWER, WSS and HTTPS)
// gives the endpoints. The result is cached per channel until Invalidate;
// concurrent misses for one channel make one set of calls. Throttled calls are
// retried with the configured Backoff.
//
// Errors wrap ErrNotFound, ErrAccessDenied, ErrInvalidArgument, ErrThrottled
// or ErrUnavailable (or are ctx's error).
func (c *Client) ResolveChannel(ctx context.Context, ref ChannelRef) (Channel, error) {
	key, region, err := c.channelKey(ref)
	if err != nil {
		return Channel{}, err
	}
	if ch, ok := c.cachedChannel(key); ok {
		return ch, nil
	}
	// Without credentials the SDK's error would read as an outage.
	if _, err := c.credentials(ctx); err != nil {
		return Channel{}, err
	}
	return coalesce(ctx, &c.flights, "ch:"+key, func() (Channel, error) {
		if ch, ok := c.cachedChannel(key); ok {
			return ch, nil
		}
		ch, err := c.resolve(ctx, ref, region)
		if errors.Is(err, ErrNotFound) {
			// Name what was looked for and where: a wrong region is the
			// usual cause.
			what := fmt.Sprintf("channel %q", ref.Name)
			if ref.ARN != "" {
				what = fmt.Sprintf("channel %s", ref.ARN)
			}
			return Channel{}, fmt.Errorf("%s in region %s does not exist (or the service's AWS account cannot see it): %w", what, region, err)
		}
		if err != nil {
			return Channel{}, err
		}
		c.mu.Lock()
		c.channels[key] = ch
		c.channels[ch.ARN] = ch
		c.mu.Unlock()
		c.log.DebugContext(ctx, "kvs channel resolved", "channel_arn", ch.ARN, "wss", ch.WSSEndpoint, "https", ch.HTTPSEndpoint, "message_ttl", ch.MessageTTL)
		return ch, nil
	})
}

// channelKey returns the cache key and the region of ref.
func (c *Client) channelKey(ref ChannelRef) (key, region string, err error) {
	if ref.ARN != "" {
		region, err := parseChannelARN(ref.ARN)
		if err != nil {
			return "", "", err
		}
		if !validRegion(region) {
			return "", "", fmt.Errorf("%w: the channel ARN's region %s is not an AWS region name", ErrInvalidRegion, quoteShort(region))
		}
		return ref.ARN, region, nil
	}
	if !channelNameRE.MatchString(ref.Name) {
		return "", "", fmt.Errorf("kvs: %w: channel needs an ARN or a name of 1..256 [a-zA-Z0-9_.-], got %q", ErrInvalidArgument, ref.Name)
	}
	region = ref.Region
	if region == "" {
		region = c.cfg.Region
	}
	if !validRegion(region) {
		return "", "", fmt.Errorf("%w: %s is not an AWS region name (such as us-west-2)", ErrInvalidRegion, quoteShort(region))
	}
	return "name:" + region + "/" + ref.Name, region, nil
}

// regionRE is the form of AWS region names: us-west-2, us-gov-east-1,
// cn-north-1, ap-southeast-5.
var regionRE = regexp.MustCompile(`^[a-z]{2,}(-[a-z]+)+-[0-9]{1,2}$`)

func validRegion(s string) bool { return len(s) <= 32 && regionRE.MatchString(s) }

// quoteShort quotes s for an error (control characters such as CR and LF
// escaped), cut at 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

func (c *Client) cachedChannel(key string) (Channel, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.channels[key]
	return ch, ok
}

// Invalidate drops what is cached about the channel channelARN (its endpoints,
// its description, the names that led to it), so that the next ResolveChannel
// asks KVS again. Call it when the endpoints fail. Cached ICE servers stay:
// their credentials remain valid until they expire.
func (c *Client) Invalidate(channelARN string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ch := range c.channels {
		if ch.ARN == channelARN {
			delete(c.channels, k)
		}
	}
	delete(c.ttls, channelARN)
}

// resolve describes the channel (unless its TTL is already known) and looks
// up its viewer endpoints.
func (c *Client) resolve(ctx context.Context, ref ChannelRef, region string) (Channel, error) {
	ch := Channel{ARN: ref.ARN, Name: ref.Name, Region: region}
	c.mu.Lock()
	ttl, described := c.ttls[ref.ARN]
	c.mu.Unlock()
	if ref.ARN == "" || !described {
		in := &kinesisvideo.DescribeSignalingChannelInput{}
		if ref.ARN != "" {
			in.ChannelARN = aws.String(ref.ARN)
		} else {
			in.ChannelName = aws.String(ref.Name)
		}
		out, err := retry(ctx, c.cfg.Backoff, isThrottled, func() (*kinesisvideo.DescribeSignalingChannelOutput, error) {
			out, err := c.api.DescribeSignalingChannel(ctx, in, withRegion(region))
			err = apiErr(ctx, "DescribeSignalingChannel", err)
			c.observe("DescribeSignalingChannel", err)
			return out, err
		})
		if err != nil {
			return Channel{}, err
		}
		info := out.ChannelInfo
		if info == nil || aws.ToString(info.ChannelARN) == "" {
			return Channel{}, unavailable("DescribeSignalingChannel", errors.New("answer has no ChannelInfo.ChannelARN"))
		}
		if info.ChannelStatus == types.StatusDeleting {
			return Channel{}, &APIError{Op: "DescribeSignalingChannel", Code: "ChannelDeleting", Message: "channel is being deleted", HTTPStatus: 200, kind: ErrNotFound}
		}
		if ref.ARN != "" && aws.ToString(info.ChannelARN) != ref.ARN {
			return Channel{}, unavailable("DescribeSignalingChannel", fmt.Errorf("asked for %s, answer is about %s", ref.ARN, aws.ToString(info.ChannelARN)))
		}
		ch.ARN = aws.ToString(info.ChannelARN)
		ch.Name = aws.ToString(info.ChannelName)
		if r, err := parseChannelARN(ch.ARN); err == nil {
			ch.Region = r
		}
		ttl = 0
		if smc := info.SingleMasterConfiguration; smc != nil && smc.MessageTtlSeconds != nil {
			ttl = time.Duration(*smc.MessageTtlSeconds) * time.Second
		}
		c.mu.Lock()
		c.ttls[ch.ARN] = ttl
		c.mu.Unlock()
	}
	ch.MessageTTL = ttl

	out, err := retry(ctx, c.cfg.Backoff, isThrottled, func() (*kinesisvideo.GetSignalingChannelEndpointOutput, error) {
		out, err := c.api.GetSignalingChannelEndpoint(ctx, &kinesisvideo.GetSignalingChannelEndpointInput{
			ChannelARN: aws.String(ch.ARN),
			SingleMasterChannelEndpointConfiguration: &types.SingleMasterChannelEndpointConfiguration{
				Protocols: []types.ChannelProtocol{types.ChannelProtocolWss, types.ChannelProtocolHttps},
				Role:      types.ChannelRoleViewer,
			},
		}, withRegion(ch.Region))
		err = apiErr(ctx, "GetSignalingChannelEndpoint", err)
		c.observe("GetSignalingChannelEndpoint", err)
		return out, err
	})
	if err != nil {
		return Channel{}, err
	}
	for _, e := range out.ResourceEndpointList {
		switch {
		case strings.EqualFold(string(e.Protocol), string(types.ChannelProtocolWss)):
			ch.WSSEndpoint = aws.ToString(e.ResourceEndpoint)
		case strings.EqualFold(string(e.Protocol), string(types.ChannelProtocolHttps)):
			ch.HTTPSEndpoint = aws.ToString(e.ResourceEndpoint)
		}
	}
	if ch.WSSEndpoint == "" || ch.HTTPSEndpoint == "" {
		return Channel{}, unavailable("GetSignalingChannelEndpoint", fmt.Errorf("answer lacks a WSS or HTTPS endpoint for %s", ch.ARN))
	}
	return ch, nil
}

// withRegion makes one control-plane call for region.
func withRegion(region string) func(*kinesisvideo.Options) {
	return func(o *kinesisvideo.Options) { o.Region = region }
}

// apiErr turns an SDK error into this package's errors.
func apiErr(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return newAPIError(op, ae.ErrorCode(), ae.ErrorMessage(), status)
	}
	if status != 0 {
		return newAPIError(op, "", "", status)
	}
	return unavailable(op, err)
}
