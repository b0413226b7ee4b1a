package debpkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// File is one file of a package: for the data, its path in the installed
// tree ("/usr/bin/ulp"), for the control archive, the member's name
// ("postinst", "triggers"); its permission bits and its bytes.
type File struct {
	Name string
	Mode fs.FileMode
	Data []byte
}

// Control is a package's control file: its fields in order (a field with
// an empty value is left out) and a Description whose first line is the
// synopsis. WriteDeb adds Installed-Size.
type Control struct {
	Fields      [][2]string
	Description string
}

// bytes renders c as deb-control(5): one "Name: value" line a field, and
// the description's later lines indented by one space, " ." for a blank
// one.
func (c Control) bytes() []byte {
	var b bytes.Buffer
	for _, f := range c.Fields {
		if f[1] != "" {
			fmt.Fprintf(&b, "%s: %s\n", f[0], f[1])
		}
	}
	lines := strings.Split(strings.TrimRight(c.Description, "\n"), "\n")
	fmt.Fprintf(&b, "Description: %s\n", lines[0])
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			l = "."
		}
		fmt.Fprintf(&b, " %s\n", l)
	}
	return b.Bytes()
}

// WriteDeb writes a binary package (deb(5)) to w: an ar archive of
// debian-binary, control.tar.gz (the control file, md5sums and the members
// of ctl: maintainer scripts, triggers) and data.tar.gz (data, with every
// parent folder, mode 0755, all owned by root). Every time stamp is mtime
// and every list is sorted, so the same inputs give the same bytes. It
// checks neither the fields nor the names: that is the caller's part.
func WriteDeb(w io.Writer, c Control, ctl, data []File, mtime time.Time) error {
	data = slices.Clone(data)
	slices.SortFunc(data, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	var size int64
	var sums bytes.Buffer
	for _, f := range data {
		size += int64(len(f.Data))
		fmt.Fprintf(&sums, "%x  %s\n", md5.Sum(f.Data), strings.TrimPrefix(f.Name, "/"))
	}
	c.Fields = append(slices.Clip(c.Fields), [2]string{"Installed-Size", fmt.Sprint((size + 1023) / 1024)})
	ctl = append([]File{{"control", 0o644, c.bytes()}, {"md5sums", 0o644, sums.Bytes()}}, ctl...)
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

// SourceDate is the time stamp of a package's files: SOURCE_DATE_EPOCH
// (reproducible builds) when set, else now.
func SourceDate() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
	if v == "" {
		return time.Now(), nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: not a number of seconds", v)
	}
	return time.Unix(n, 0), nil
}

// tarGz is the gzipped tar of files as "./NAME" entries owned by root;
// with dirs, every folder above a file gets its own entry first.
func tarGz(files []File, dirs bool, mtime time.Time) ([]byte, error) {
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
		name := "./" + strings.TrimPrefix(f.Name, "/")
		if dirs {
			if err := mkdir(path.Dir(f.Name)); err != nil {
				return nil, err
			}
		}
		if err := entry(name, tar.TypeReg, int64(f.Mode.Perm()), len(f.Data)); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
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
