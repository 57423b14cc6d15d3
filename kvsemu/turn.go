package kvsemu

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // TURN REST credentials are defined with HMAC-SHA1.
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/turn/v4"
)

// turnRealm is the realm of the embedded TURN server.
const turnRealm = "kinesisvideo.amazonaws.com"

// turnServer is the embedded pion TURN server: UDP and TCP on one IPv4
// address (Config.TURNAddr), relays on that address, time-limited
// REST-style credentials.
type turnServer struct {
	srv     *turn.Server
	ip      netip.Addr
	udpPort int
	tcpPort int
	secret  []byte
}

// startTURN listens on addr's IP, UDP and TCP; port 0 picks a free port
// for each. now is the clock that decides whether a credential has
// expired.
func startTURN(addr netip.AddrPort, now func() time.Time, log *slog.Logger) (*turnServer, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("turn secret: %w", err)
	}
	udp, err := net.ListenPacket("udp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("turn udp: %w", err)
	}
	tcp, err := net.Listen("tcp4", addr.String())
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("turn tcp: %w", err)
	}
	t := &turnServer{
		ip:      addr.Addr(),
		udpPort: udp.LocalAddr().(*net.UDPAddr).Port,
		tcpPort: tcp.Addr().(*net.TCPAddr).Port,
		secret:  secret,
	}
	relay := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorStatic{RelayAddress: net.IP(t.ip.AsSlice()), Address: t.ip.String()}
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:             turnRealm,
		AuthHandler:       t.authHandler(now, log),
		LoggerFactory:     pionLogs{log.With("component", "turn")},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: relay()}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: tcp, RelayAddressGenerator: relay()}},
	})
	if err != nil {
		udp.Close()
		tcp.Close()
		return nil, fmt.Errorf("turn server: %w", err)
	}
	t.srv = srv
	return t, nil
}

// credentials issues a TURN credential for channelARN that expires at
// expiry: username "<expiry unix>:<base64("v1:"+arn)>" (the shape KVS uses),
// password base64(HMAC-SHA1(secret, username)).
func (t *turnServer) credentials(channelARN string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + base64.StdEncoding.EncodeToString([]byte("v1:"+channelARN))
	return username, t.password(username)
}

func (t *turnServer) password(username string) string {
	m := hmac.New(sha1.New, t.secret)
	m.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// uris are the TURN URIs GetIceServerConfig returns (no turns: variants).
func (t *turnServer) uris() []string {
	return []string{
		fmt.Sprintf("turn:%s:%d?transport=udp", t.ip, t.udpPort),
		fmt.Sprintf("turn:%s:%d?transport=tcp", t.ip, t.tcpPort),
	}
}

// addrs returns the UDP and TCP listen addresses.
func (t *turnServer) addrs() (udp, tcp string) {
	return netip.AddrPortFrom(t.ip, uint16(t.udpPort)).String(), netip.AddrPortFrom(t.ip, uint16(t.tcpPort)).String()
}

// authHandler refuses malformed and expired usernames.
func (t *turnServer) authHandler(now func() time.Time, log *slog.Logger) turn.AuthHandler {
	return func(username, realm string, src net.Addr) ([]byte, bool) {
		exp, _, ok := strings.Cut(username, ":")
		if !ok {
			log.Debug("turn: malformed username", "src", src.String())
			return nil, false
		}
		sec, err := strconv.ParseInt(exp, 10, 64)
		if err != nil {
			log.Debug("turn: malformed username", "src", src.String())
			return nil, false
		}
		if now().Unix() > sec {
			log.Debug("turn: expired credential", "src", src.String(), "expired", time.Unix(sec, 0).UTC())
			return nil, false
		}
		return turn.GenerateAuthKey(username, realm, t.password(username)), true
	}
}

func (t *turnServer) close() error {
	return t.srv.Close()
}
