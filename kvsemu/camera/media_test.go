package camera

import (
	"errors"
	"testing"
	"time"
)

func TestParseClipEmbedded(t *testing.T) {
	got, err := parseClip(clipIVF)
	if err != nil {
		t.Fatalf("parseClip(clip.ivf) error = %v", err)
	}
	if len(got.frames) != 45 || got.frameDur != time.Second/15 {
		t.Errorf("parseClip(clip.ivf) = %d frames of %v, want 45 of %v", len(got.frames), got.frameDur, time.Second/15)
	}
	if len(clipIVF) > 200<<10 {
		t.Errorf("clip.ivf is %d bytes, want < 200 KB", len(clipIVF))
	}
}

func TestParseClipRejects(t *testing.T) {
	headerOnly := append([]byte(nil), clipIVF[:32]...)
	h264 := append([]byte(nil), clipIVF...)
	copy(h264[8:12], "H264")
	tests := []struct {
		name string
		give []byte
	}{
		{name: "empty", give: nil},
		{name: "not ivf", give: []byte("RIFF....WEBPVP8 ")},
		{name: "no frames", give: headerOnly},
		{name: "not vp8", give: h264},
		{name: "truncated frame", give: clipIVF[:100]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseClip(tt.give); !errors.Is(err, errBadClip) {
				t.Errorf("parseClip(%s) error = %v, want errBadClip", tt.name, err)
			}
		})
	}
}
