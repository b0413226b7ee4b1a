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

func TestParseStatus_Kthread(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"Pid:\t2\nKthread:\t1\n", true},
		{"Pid:\t7\nKthread:\t0\n", false},
		{"Pid:\t7\n", false}, // kernels before 6.0 print no Kthread line
	} {
		s, err := ParseStatus([]byte(tc.in))
		if err != nil || s.Kthread != tc.want {
			t.Errorf("ParseStatus(%q): Kthread %v, %v; want %v", tc.in, s.Kthread, err, tc.want)
		}
	}
	if _, err := ParseStatus([]byte("Pid:\t2\nKthread:\tmaybe\n")); err == nil {
		t.Error("bad Kthread accepted")
	}
}
