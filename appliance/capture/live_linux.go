package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// LiveStats counts what a live capture saw; Dropped is the kernel's count
// of frames lost because the agent was too slow.
type LiveStats struct {
	Frames  uint64
	Dropped uint64
}

// htons converts to network byte order for the protocol argument.
func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Live reads frames from the interface named ifname through an AF_PACKET
// socket until ctx ends, handing each to h. tick, when not nil, is called
// about once a second while no frames arrive (so alert folding windows
// close on a quiet link). It needs CAP_NET_RAW.
func Live(ctx context.Context, ifname string, snaplen int, h Handler, tick func(time.Time)) (LiveStats, error) {
	var st LiveStats
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return st, fmt.Errorf("capture: interface %s: %w", ifname, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return st, fmt.Errorf("capture: AF_PACKET socket (needs CAP_NET_RAW): %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		return st, fmt.Errorf("capture: bind to %s: %w", ifname, err)
	}
	// Promiscuous: a sensor sees traffic for every host on the segment.
	mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
	_ = unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq)
	// Keep VLAN tags visible: the kernel strips them into auxdata.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1)
	// Wake up at least every 200 ms so ctx is noticed.
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return st, fmt.Errorf("capture: set timeout: %w", err)
	}
	if snaplen <= 0 {
		snaplen = 65535
	}
	buf := make([]byte, snaplen+4)
	oob := make([]byte, unix.CmsgSpace(sizeofAuxdata))
	lastTick := time.Now()
	for ctx.Err() == nil {
		n, oobn, flags, _, err := unix.Recvmsg(fd, buf[4:], oob, unix.MSG_TRUNC)
		now := time.Now()
		if tick != nil && now.Sub(lastTick) >= time.Second {
			tick(now)
			lastTick = now
		}
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return st, fmt.Errorf("capture: read %s: %w", ifname, err)
		}
		_ = flags
		wire := n
		if n > snaplen {
			n = snaplen
		}
		st.Frames++
		frame := buf[4 : 4+n]
		if vlan, ok := auxVLAN(oob[:oobn]); ok && n >= 12 {
			// Put the tag back where the wire had it.
			copy(buf[0:12], buf[4:16])
			binary.BigEndian.PutUint16(buf[12:], 0x8100)
			binary.BigEndian.PutUint16(buf[14:], vlan)
			frame = buf[0 : 4+n]
			wire += 4
		}
		h(frame, now, wire)
	}
	if s, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		st.Dropped = uint64(s.Drops)
	}
	return st, nil
}

// auxVLAN reads the VLAN tag the kernel removed from a frame.
func auxVLAN(oob []byte) (uint16, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < sizeofAuxdata {
			continue
		}
		status := binary.NativeEndian.Uint32(m.Data[0:4])
		tci := binary.NativeEndian.Uint16(m.Data[16:18])
		if status&unix.TP_STATUS_VLAN_VALID != 0 || tci != 0 {
			return tci, true
		}
	}
	return 0, false
}

// sizeofAuxdata is sizeof(struct tpacket_auxdata).
const sizeofAuxdata = 20
