package kvs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// IceServer is one ICE server for an RTCPeerConnection. Its String, GoString
// and LogValue never show Credential.
type IceServer struct {
	URLs       []string
	Username   string
	Credential string
}

// String implements fmt.Stringer without the credential.
func (s IceServer) String() string {
	cred := ""
	if s.Credential != "" {
		cred = "<redacted>"
	}
	return fmt.Sprintf("{URLs:%v Username:%s Credential:%s}", s.URLs, s.Username, cred)
}

// GoString implements fmt.GoStringer without the credential.
func (s IceServer) GoString() string { return "kvs.IceServer" + s.String() }

// LogValue implements slog.LogValuer without the credential.
func (s IceServer) LogValue() slog.Value {
	return slog.GroupValue(slog.Any("urls", s.URLs), slog.String("username", s.Username))
}

// IceServers is a channel's ICE server set: KVS's TURN servers, then the
// region's KVS STUN server last.
type IceServers struct {
	Servers []IceServer
	// Expires is when the first TURN credential of the set runs out (fetch
	// time + the smallest Ttl). The Client refetches Config.ICERefreshBefore
	// earlier. Without TURN servers it is the fetch time.
	Expires time.Time
}

// maxIceServers and maxIceURIs are the C SDK's limits: extra servers are
// dropped, extra URIs too.
const (
	maxIceServers = 5
	maxIceURIs    = 4
	maxICEBody    = 64 << 10
)

// stunURL returns the KVS STUN server of region.
func stunURL(region string) string {
	domain := "amazonaws.com"
	if strings.HasPrefix(region, "cn-") {
		domain = "amazonaws.com.cn"
	}
	return "stun:stun.kinesisvideo." + region + "." + domain + ":443"
}

// IceServers returns the channel's ICE servers, from the cache while they are
// fresh (until Config.ICERefreshBefore before Expires), otherwise from
// GetIceServerConfig. Concurrent misses for one channel make one call; the
// cache is per channel, whatever clientID asks. Errors are as for
// ResolveChannel.
func (c *Client) IceServers(ctx context.Context, ch Channel, clientID string) (IceServers, error) {
	if s, ok := c.cachedIce(ch.ARN); ok {
		return s, nil
	}
	return coalesce(ctx, &c.flights, "ice:"+ch.ARN, func() (IceServers, error) {
		if s, ok := c.cachedIce(ch.ARN); ok {
			return s, nil
		}
		return c.fetchIce(ctx, ch, clientID)
	})
}

// RefreshIceServers fetches the channel's ICE servers from KVS, bypassing and
// then replacing the cache (after RECONNECT_ICE_SERVER, for example).
// Concurrent refreshes of one channel (every viewer of a channel told at
// once) share one call, which keeps them under KVS's 5 calls/s per channel.
func (c *Client) RefreshIceServers(ctx context.Context, ch Channel, clientID string) (IceServers, error) {
	return coalesce(ctx, &c.flights, "ice-refresh:"+ch.ARN, func() (IceServers, error) {
		return c.fetchIce(ctx, ch, clientID)
	})
}

func (c *Client) cachedIce(arn string) (IceServers, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.ice[arn]
	if !ok || !c.now().Before(s.Expires.Add(-c.cfg.ICERefreshBefore)) {
		return IceServers{}, false
	}
	return s, true
}

// fetchIce calls GetIceServerConfig with backoff and caches the answer.
func (c *Client) fetchIce(ctx context.Context, ch Channel, clientID string) (IceServers, error) {
	if err := validateClientID(clientID); err != nil {
		return IceServers{}, err
	}
	if ch.ARN == "" || ch.HTTPSEndpoint == "" {
		return IceServers{}, fmt.Errorf("kvs: %w: channel has no ARN or HTTPS endpoint (resolve it first)", ErrInvalidArgument)
	}
	s, err := retry(ctx, c.cfg.Backoff, isTransient, func() (IceServers, error) {
		s, err := c.getIceServerConfig(ctx, ch, clientID)
		c.observe("GetIceServerConfig", err)
		return s, err
	})
	if err != nil {
		return IceServers{}, err
	}
	c.mu.Lock()
	c.ice[ch.ARN] = s
	c.mu.Unlock()
	c.log.DebugContext(ctx, "kvs ice servers fetched", "channel_arn", ch.ARN, "servers", len(s.Servers), "expires", s.Expires)
	return s, nil
}

type iceConfigRequest struct {
	ChannelARN string `json:"ChannelARN"`
	ClientID   string `json:"ClientId,omitempty"`
	Service    string `json:"Service"`
}

type iceConfigResponse struct {
	IceServerList []struct {
		Password string   `json:"Password"`
		TTL      int64    `json:"Ttl"`
		URIs     []string `json:"Uris"`
		Username string   `json:"Username"`
	} `json:"IceServerList"`
}

// kvsErrorBody is the JSON error body of both KVS APIs.
type kvsErrorBody struct {
	Type    string `json:"__type"`
	Code    string `json:"code"`
	Message string `json:"message"` // encoding/json also matches "Message"
}

// getIceServerConfig makes one SigV4-signed POST /v1/get-ice-server-config.
func (c *Client) getIceServerConfig(ctx context.Context, ch Channel, clientID string) (IceServers, error) {
	const op = "GetIceServerConfig"
	body, err := json.Marshal(iceConfigRequest{ChannelARN: ch.ARN, ClientID: clientID, Service: "TURN"})
	if err != nil {
		return IceServers{}, fmt.Errorf("kvs %s: encode: %w", op, err)
	}
	endpoint := strings.TrimSuffix(ch.HTTPSEndpoint, "/") + "/v1/get-ice-server-config"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return IceServers{}, fmt.Errorf("kvs %s: %w: %w", op, ErrInvalidArgument, err)
	}
	req.Header.Set("Content-Type", "application/json")
	creds, err := c.credentials(ctx)
	if err != nil {
		return IceServers{}, err
	}
	sum := sha256.Sum256(body)
	fetched := c.now() // the cache's clock; signing needs the wall clock
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), signingService, ch.Region, time.Now()); err != nil {
		return IceServers{}, fmt.Errorf("kvs %s: sign: %w", op, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return IceServers{}, ctxErr
		}
		return IceServers{}, unavailable(op, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxICEBody))
	if err != nil {
		return IceServers{}, unavailable(op, err)
	}
	if resp.StatusCode/100 != 2 {
		return IceServers{}, errorFromResponse(op, resp, raw)
	}
	var out iceConfigResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return IceServers{}, unavailable(op, fmt.Errorf("decode answer: %w", err))
	}
	s := IceServers{Expires: fetched}
	var minTTL time.Duration
	for _, e := range out.IceServerList {
		if len(s.Servers) == maxIceServers {
			break
		}
		if len(e.URIs) == 0 {
			continue
		}
		uris := e.URIs
		if len(uris) > maxIceURIs {
			uris = uris[:maxIceURIs]
		}
		s.Servers = append(s.Servers, IceServer{URLs: append([]string(nil), uris...), Username: e.Username, Credential: e.Password})
		if ttl := time.Duration(e.TTL) * time.Second; minTTL == 0 || ttl < minTTL {
			minTTL = ttl
		}
	}
	s.Expires = fetched.Add(minTTL)
	s.Servers = append(s.Servers, IceServer{URLs: []string{stunURL(ch.Region)}})
	return s, nil
}

// errorFromResponse reads a KVS error answer: the code from X-Amzn-ErrorType,
// else from the body's __type or code; the message from the body.
func errorFromResponse(op string, resp *http.Response, raw []byte) error {
	var eb kvsErrorBody
	_ = json.Unmarshal(raw, &eb) // a body that is not JSON leaves only the status
	code := resp.Header.Get("X-Amzn-ErrorType")
	if code == "" {
		code = eb.Type
	}
	if code == "" {
		code = eb.Code
	}
	msg := eb.Message
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	return newAPIError(op, code, msg, resp.StatusCode)
}
