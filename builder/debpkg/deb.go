package debpkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
)

// debFile is one file of a package: a path inside the package's tree
// ("/usr/lib/..." for data, "postinst" for control) and its bytes.
type debFile struct {
	name string
	mode int64
	data []byte
}

// control is a package's control file: its fields in order, and a
// Description whose first line is the synopsis.
type control struct {
	fields      [][2]string
	description string
}

// bytes renders c as deb-control(5): one "Name: value" line a field, and
// the description's later lines indented by one space, " ." for a blank
// one.
func (c control) bytes() []byte {
	var b bytes.Buffer
	for _, f := range c.fields {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
		}
	}
	lines := strings.Split(strings.TrimRight(c.description, "\n"), "\n")
	fmt.Fprintf(&b, "Description: %s\n", lines[0])
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			l = "."
		}
		fmt.Fprintf(&b, " %s\n", l)
	}
	return b.Bytes()
}

// writeDeb writes a binary package (deb(5)) to w: an ar archive of
// debian-binary, control.tar.gz (the control file, md5sums and ctl) and
// data.tar.gz (data, with every parent folder, owned by root). Every time
// stamp is mtime and every list is sorted, so the same inputs give the
// same bytes.
func writeDeb(w io.Writer, c control, ctl, data []debFile, mtime time.Time) error {
	data = slices.Clone(data)
	slices.SortFunc(data, func(a, b debFile) int { return strings.Compare(a.name, b.name) })
	var size int64
	var sums bytes.Buffer
	for _, f := range data {
		size += int64(len(f.data))
		fmt.Fprintf(&sums, "%x  %s\n", md5.Sum(f.data), strings.TrimPrefix(f.name, "/"))
	}
	c.fields = append(c.fields, [2]string{"Installed-Size", fmt.Sprint((size + 1023) / 1024)})
	ctl = append([]debFile{{"control", 0o644, c.bytes()}, {"md5sums", 0o644, sums.Bytes()}}, ctl...)
	ctlTar, err := tarGz(ctl, false, mtime)
	if err != nil {
		return err
	}
	dataTar, err := tarGz(data, true, mtime)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, "!<arch>\n"); err != nil {
		return err
	}
	for _, m := range []struct {
		name string
		data []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.gz", ctlTar}, {"data.tar.gz", dataTar}} {
		hdr := fmt.Sprintf("%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, mtime.Unix(), 0, 0, "100644", len(m.data))
		if _, err := io.WriteString(w, hdr); err != nil {
			return err
		}
		if _, err := w.Write(m.data); err != nil {
			return err
		}
		if len(m.data)%2 == 1 {
			if _, err := w.Write([]byte{'\n'}); err != nil {
				return err
			}
		}
	}
	return nil
}

// tarGz is the gzipped tar of files as "./NAME" entries owned by root;
// with dirs, every folder above a file gets its own entry first.
func tarGz(files []debFile, dirs bool, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	entry := func(name string, typ byte, mode int64, size int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: int64(size),
			ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatGNU})
	}
	seen := map[string]bool{}
	var mkdir func(d string) error
	mkdir = func(d string) error {
		if seen[d] {
			return nil
		}
		seen[d] = true
		if d != "/" {
			if err := mkdir(path.Dir(d)); err != nil {
				return err
			}
		}
		return entry("."+strings.TrimSuffix(d, "/")+"/", tar.TypeDir, 0o755, 0)
	}
	for _, f := range files {
		name := "./" + strings.TrimPrefix(f.name, "/")
		if dirs {
			if err := mkdir(path.Dir(f.name)); err != nil {
				return nil, err
			}
		}
		if err := entry(name, tar.TypeReg, f.mode, len(f.data)); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
