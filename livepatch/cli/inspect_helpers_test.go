package cli

import (
	"errors"
	"syscall"
)

func asNobody() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
