package procfs

import (
	"os"
	"testing"
)

func TestParseStatus_CapEff(t *testing.T) {
	s, err := ParseStatus([]byte("Pid:\t1\nCapEff:\t000001ffffffffff\n"))
	if err != nil || s.CapEff != 0x1ffffffffff {
		t.Fatalf("CapEff = %#x, %v", s.CapEff, err)
	}
	if _, err := ParseStatus([]byte("Pid:\t1\nCapEff:\tzz\n")); err == nil {
		t.Error("bad CapEff accepted")
	}
	if _, err := ReadStatus(os.Getpid()); err != nil {
		t.Fatalf("the real status file: %v", err)
	}
}
