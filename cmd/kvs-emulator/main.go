// Command kvs-emulator runs a local Amazon Kinesis Video Streams WebRTC
// signaling service (package kvsemu) with a simulated camera.
//
//	go run ./cmd/kvs-emulator [flags]
//
// It serves the control plane, /v1/get-ice-server-config, the signaling
// WebSocket and the admin API (/_emulator/, development only, no
// authentication) on one TLS listener, plus a TURN server, and prints the
// endpoint, the credentials' access key id, the TURN addresses, the
// cameras' ICE address and the demo channel's ARN.
//
// Flags and defaults:
//
//	-addr 127.0.0.1:4567               control plane, signaling and admin listener address
//	-region us-west-2                  the only region accepted in signatures
//	-access-key-id AKIDEMULATOR        the only access key accepted
//	-secret-access-key emulator-secret its secret
//	-demo=true                         create channel "demo-camera" with a camera connected
//	-demo-channel demo-camera          the demo channel's name
//	-camera-mode c-sample              c-sample, js-sample or restart-capable
//	-camera-ip 127.0.0.1               the address cameras gather ICE candidates on
//	-turn-addr 127.0.0.1:0             TURN listen address, UDP and TCP (port 0: a free port each)
//	-ca-out FILE                       write the emulator CA's PEM to FILE
//	-log-level info                    debug, info, warn or error
//
// To give the camera a host of its own on a test network, pass an address of
// one of this machine's interfaces (say a veth end) as -camera-ip and the
// same as -turn-addr's IP; viewers elsewhere on that network then reach the
// camera and TURN at that address. -addr may be 0.0.0.0:PORT so that they
// reach signaling too (endpoints are still advertised on 127.0.0.1 then;
// give a specific IP to advertise that).
//
// Clients must trust the CA (write it with -ca-out, or fetch
// /_emulator/ca.pem) and sign with the credentials above, for example:
//
//	go run ./cmd/kvs-emulator -ca-out /tmp/kvsemu-ca.pem
//	AWS_ACCESS_KEY_ID=AKIDEMULATOR AWS_SECRET_ACCESS_KEY=emulator-secret \
//	AWS_CA_BUNDLE=/tmp/kvsemu-ca.pem aws --region us-west-2 \
//	  --endpoint-url https://127.0.0.1:4567 kinesisvideo describe-signaling-channel --channel-name demo-camera
//	curl --cacert /tmp/kvsemu-ca.pem https://127.0.0.1:4567/_emulator/counters
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kvs-emulator:", err)
		os.Exit(1)
	}
}

// run starts the emulator and serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	def := kvsemu.DefaultConfig()
	fs := flag.NewFlagSet("kvs-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", def.Addr, "listener address (host:port) of the control plane, signaling and admin API")
	region := fs.String("region", def.Region, "region")
	akid := fs.String("access-key-id", def.AccessKeyID, "the access key id accepted")
	secret := fs.String("secret-access-key", def.SecretAccessKey, "the secret access key accepted")
	demo := fs.Bool("demo", true, "create the demo channel with a simulated camera")
	demoName := fs.String("demo-channel", "demo-camera", "demo channel name")
	mode := fs.String("camera-mode", string(def.CameraMode), "camera mode: c-sample, js-sample or restart-capable")
	cameraIP := fs.String("camera-ip", def.CameraIP.String(), "the address cameras gather ICE host candidates on (an address of one of this host's interfaces)")
	turnAddr := fs.String("turn-addr", def.TURNAddr, "TURN listen address ip:port, UDP and TCP (IPv4; port 0: a free port each)")
	caOut := fs.String("ca-out", "", "write the CA certificate (PEM) to this file")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	camMode, err := camera.ParseMode(*mode)
	if err != nil {
		return fmt.Errorf("-camera-mode: %w", err)
	}
	camIP, err := netip.ParseAddr(*cameraIP)
	if err != nil {
		return fmt.Errorf("-camera-ip: %w", err)
	}

	cfg := def
	cfg.Addr, cfg.Region, cfg.AccessKeyID, cfg.SecretAccessKey = *addr, *region, *akid, *secret
	cfg.CameraMode, cfg.CameraIP, cfg.TURNAddr = camMode, camIP, *turnAddr
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	emu, err := kvsemu.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer emu.Close()

	if *caOut != "" {
		if err := os.WriteFile(*caOut, emu.CACertPEM(), 0o644); err != nil {
			return fmt.Errorf("-ca-out: %w", err)
		}
	}
	udp, tcp := emu.TURNAddrs()
	fmt.Fprintf(stdout, "kvs-emulator listening on %s (region %s, access key id %s)\n", emu.Endpoint(), emu.Region(), cfg.AccessKeyID)
	fmt.Fprintf(stdout, "signaling %s, admin %s, TURN udp %s tcp %s, camera ICE on %s\n",
		emu.WSSEndpoint(), emu.AdminURL(), udp, tcp, emu.CameraIP())
	if *caOut != "" {
		fmt.Fprintf(stdout, "CA certificate written to %s\n", *caOut)
	}
	if *demo {
		arn, err := emu.CreateChannel(*demoName, 0)
		if err != nil {
			return err
		}
		if err := emu.StartCamera(arn, camMode); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "demo channel %s: %s (camera %s)\n", *demoName, arn, camMode)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "kvs-emulator: shutting down")
	return emu.Close()
}
