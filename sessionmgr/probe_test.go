package sessionmgr_test

import (
	"context"
	"testing"
	"time"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// A probe slot released before its clientId was dialed gives the id back
// at once (KVS never saw it); one that dialed puts it into cooldown.
func TestProbeSlotReturnsAnUndialedClientID(t *testing.T) {
	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	ids := bind.NewClientIDs(clientid.NewMemory(clientid.DefaultConfig()))
	m := sessionmgr.New(cfg, memstore.New(), &fakeCamera{answerFrom: 1}, ids, quietLogger())
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx := t.Context()
	ch, err := m.ResolveChannel(ctx, sessionmgr.ChannelRef{Name: "probed"})
	if err != nil {
		t.Fatal(err)
	}
	reserve := func() *sessionmgr.ProbeSlot {
		t.Helper()
		p, err := m.ReserveProbe(ctx, ch, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	first := reserve()
	first.Release(ctx) // never dialed
	second := reserve()
	if second.ClientID != first.ClientID {
		t.Errorf("after an undialed release: clientId %q, want %q again (no cooldown)", second.ClientID, first.ClientID)
	}
	conn, err := second.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	second.Release(ctx)
	third := reserve()
	defer third.Release(ctx)
	if third.ClientID == second.ClientID {
		t.Errorf("after a dialed release: clientId %q again, want another (the dialed one cools down)", third.ClientID)
	}
}
