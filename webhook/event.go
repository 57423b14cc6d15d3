package webhook

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// Version is the version of the event body's layout (Event.Version). A
// change that renames or removes a field, or changes one's meaning, gets a
// new version; new fields may be added within a version.
const Version = 1

// Type is an event's kind, as it is named in the body.
type Type string

// The event types.
const (
	// Created: the session was created (the timeline's CREATED).
	Created Type = "session.created"
	// MediaFlowing: the session's first video flows (its first
	// MEDIA_FLOWING; the MEDIA_FLOWING of a later peer connection, after a
	// recovery, is not sent again).
	MediaFlowing Type = "session.media_flowing"
	// Recovered: video flows again after an outage (RECOVERED).
	Recovered Type = "session.recovered"
	// Failed: the session failed (FAILED); it has ended.
	Failed Type = "session.failed"
	// Closed: the session was closed (CLOSED); it has ended. A session ends
	// with exactly one of session.failed and session.closed.
	Closed Type = "session.closed"
)

// Event is the JSON body of one webhook request. It is a storage and wire
// format: fields are only ever added within a Version, enums are by name.
type Event struct {
	// ID is unique per event and the same on every retry of it: receivers
	// dedupe by it.
	ID      string `json:"id"`
	Version int    `json:"version"`
	Type    Type   `json:"type"`
	// Session is the session's resource name, sessions/{id}.
	Session  string  `json:"session"`
	Channel  Channel `json:"channel"`
	ViewerID string  `json:"viewer_id"`
	// ClientID is the session's KVS clientId when the event happened;
	// empty before one was allocated.
	ClientID string `json:"client_id,omitempty"`
	// Time is when the session recorded the event (its timeline's time).
	Time time.Time `json:"time"`
	// Sequence is the event's sequence number on the session's timeline
	// (WatchSession's SessionEvent.sequence).
	Sequence uint64 `json:"sequence"`

	// Exactly one of the details below is set, matching Type (none for
	// session.created).
	MediaFlowing *MediaDetails    `json:"media_flowing,omitempty"`
	Recovered    *RecoveryDetails `json:"recovered,omitempty"`
	Failed       *FailureDetails  `json:"failed,omitempty"`
	Closed       *CloseDetails    `json:"closed,omitempty"`
}

// Channel names the session's KVS signaling channel.
type Channel struct {
	ARN  string `json:"arn"`
	Name string `json:"name,omitempty"`
}

// MediaDetails are session.media_flowing's details.
type MediaDetails struct {
	// PeerConnection is the app's id of the peer connection video flows
	// on.
	PeerConnection uint32 `json:"peer_connection"`
}

// RecoveryDetails are session.recovered's details.
type RecoveryDetails struct {
	// OutageMS is the outage in milliseconds: from its first sign (video
	// stalled, ICE disconnected, a network change) to video flowing again.
	OutageMS int64 `json:"outage_ms"`
	// Step is the recovery ladder's step that brought video back:
	// ICE_RESTART, NEW_PEER_CONNECTION or NEW_CLIENT_ID.
	Step string `json:"step"`
}

// FailureDetails are session.failed's details.
type FailureDetails struct {
	// Reason is the failure's code (ANSWER_TIMEOUT, RECOVERY_FAILED,
	// CHANNEL_NOT_FOUND, ...: the API's FailureReason without its prefix).
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
}

// CloseDetails are session.closed's details.
type CloseDetails struct {
	// Reason is why the session closed (CLIENT_LEFT, CLIENT_GONE,
	// CLOSED_BY_BACKEND, MAX_LIFETIME, SERVER_SHUTDOWN: the API's
	// CloseReason without its prefix).
	Reason string `json:"reason"`
}

// FromTimeline maps a timeline event to its webhook event, without an ID;
// ok is false for the events that send no webhook. A MEDIA_FLOWING maps to
// session.media_flowing every time: the queue keeps only a session's first
// (see Dispatcher).
func FromTimeline(s sessionmgr.SessionRef, e sessionmgr.Event) (ev Event, ok bool) {
	ev = Event{
		Version:  Version,
		Session:  "sessions/" + string(s.ID),
		Channel:  Channel{ARN: s.ChannelARN, Name: s.ChannelName},
		ViewerID: s.ViewerID,
		ClientID: e.ClientID,
		Time:     e.Time.UTC(),
		Sequence: e.Seq,
	}
	switch e.Type {
	case sessionmgr.EventCreated:
		ev.Type = Created
	case sessionmgr.EventMediaFlowing:
		ev.Type = MediaFlowing
		ev.MediaFlowing = &MediaDetails{}
		if e.Media != nil {
			ev.MediaFlowing.PeerConnection = e.Media.PeerConnection
		}
	case sessionmgr.EventRecovered:
		ev.Type = Recovered
		ev.Recovered = &RecoveryDetails{Step: sessionmgr.StepUnknown.String()}
		if e.Recovery != nil {
			ev.Recovered.OutageMS = e.Recovery.Outage.Milliseconds()
			ev.Recovered.Step = e.Recovery.Step.String()
		}
	case sessionmgr.EventFailed:
		ev.Type = Failed
		ev.Failed = &FailureDetails{Reason: sessionmgr.FailureUnknown.String(), Message: e.Message}
		if e.Failure != nil {
			ev.Failed.Reason, ev.Failed.Message = e.Failure.Reason.String(), e.Failure.Message
		}
	case sessionmgr.EventClosed:
		ev.Type = Closed
		ev.Closed = &CloseDetails{Reason: e.Close.String()}
	default:
		return Event{}, false
	}
	return ev, true
}

// newID returns a fresh event id: "evt_" and 26 random base32 characters.
func newID() string { return "evt_" + rand.Text() }

// Decode parses a request body into ev, refusing a Version this package
// does not know (call it after Verify).
func Decode(body []byte, ev *Event) error {
	if err := json.Unmarshal(body, ev); err != nil {
		return fmt.Errorf("decode webhook event: %w", err)
	}
	if ev.Version != Version {
		return fmt.Errorf("decode webhook event: version %d, want %d", ev.Version, Version)
	}
	return nil
}
