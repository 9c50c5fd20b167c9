// Parent side: rtnetlink requests (see netlink.h). The messages are laid out as iproute2
// lays them out, so the kernel treats them exactly like `ip link/addr/route` requests.
#include "netlink.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstring>

namespace nsjail {

// A request under construction in a fixed buffer; every request here is far below its size,
// and an overflow is reported as EMSGSIZE instead of writing past it.
class Rtnl::Message {
 public:
  Message(uint16_t type, uint16_t flags) {
    std::memset(buf_, 0, sizeof buf_);
    hdr()->nlmsg_len = NLMSG_HDRLEN;
    hdr()->nlmsg_type = type;
    hdr()->nlmsg_flags = flags;
  }

  nlmsghdr* hdr() { return reinterpret_cast<nlmsghdr*>(buf_); }
  bool overflow() const { return overflow_; }

  // The request's fixed header (ifinfomsg, ifaddrmsg, rtmsg), also inside a nested peer.
  template <typename T>
  void Put(const T& body) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    if (!Room(at, NLMSG_ALIGN(sizeof body))) return;
    std::memcpy(buf_ + at, &body, sizeof body);
    hdr()->nlmsg_len = static_cast<uint32_t>(at + NLMSG_ALIGN(sizeof body));
  }

  void Attr(uint16_t type, const void* data, size_t len) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    if (!Room(at, RTA_SPACE(len))) return;
    rtattr header{static_cast<unsigned short>(RTA_LENGTH(len)), type};
    std::memcpy(buf_ + at, &header, sizeof header);
    if (len > 0) std::memcpy(buf_ + at + RTA_LENGTH(0), data, len);
    hdr()->nlmsg_len = static_cast<uint32_t>(at + RTA_SPACE(len));
  }
  void AttrString(uint16_t type, const std::string& s) { Attr(type, s.c_str(), s.size() + 1); }
  void AttrU32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof v); }

  // A nested attribute: Begin returns where it starts, End fixes its length.
  size_t BeginNest(uint16_t type) {
    size_t at = NLMSG_ALIGN(hdr()->nlmsg_len);
    Attr(type, nullptr, 0);
    return at;
  }
  void EndNest(size_t at) {
    if (overflow_) return;
    rtattr* nest = reinterpret_cast<rtattr*>(buf_ + at);
    nest->rta_len = static_cast<unsigned short>(hdr()->nlmsg_len - at);
  }

 private:
  bool Room(size_t at, size_t len) {
    if (at + len <= sizeof buf_) return true;
    overflow_ = true;
    return false;
  }

  alignas(nlmsghdr) char buf_[1024];
  bool overflow_ = false;
};

namespace {

int AddressLength(int family) { return family == AF_INET6 ? 16 : 4; }

// Calls fn(type, data, len) for each rtattr in [data, data + len).
template <typename Fn>
void ForEachAttr(const char* data, size_t len, Fn fn) {
  size_t off = 0;
  while (off + sizeof(rtattr) <= len) {
    const rtattr* a = reinterpret_cast<const rtattr*>(data + off);
    if (a->rta_len < sizeof(rtattr) || off + a->rta_len > len) break;
    fn(a->rta_type & NLA_TYPE_MASK, data + off + RTA_LENGTH(0), a->rta_len - RTA_LENGTH(0));
    off += RTA_ALIGN(a->rta_len);
  }
}

// An NLMSG_ERROR: 0 for an ack, else the errno; the extended ack's text goes to *message.
int AckError(const nlmsghdr* h, std::string* message) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return EBADMSG;
  const nlmsgerr* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
  if (e->error != 0 && (h->nlmsg_flags & NLM_F_ACK_TLVS)) {
    // The attributes follow the error and (unless capped) the echoed request's payload.
    size_t start = sizeof(nlmsgerr);
    if (!(h->nlmsg_flags & NLM_F_CAPPED) && e->msg.nlmsg_len >= NLMSG_HDRLEN) start += e->msg.nlmsg_len - NLMSG_HDRLEN;
    start = NLMSG_HDRLEN + NLMSG_ALIGN(start);
    if (start < h->nlmsg_len) {
      ForEachAttr(reinterpret_cast<const char*>(h) + start, h->nlmsg_len - start, [&](int type, const char* data, size_t len) {
        if (type == NLMSGERR_ATTR_MSG && len > 0) message->assign(data, strnlen(data, len));
      });
    }
  }
  return -e->error;
}

}  // namespace

int Rtnl::Open() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!fd) return errno;
  Adopt(std::move(fd));
  return 0;
}

void Rtnl::Adopt(UniqueFd fd) {
  fd_ = std::move(fd);
  if (!fd_) return;
  // The kernel's reason for a refusal ("Invalid prefix length", ...) makes a clearer error.
  // Without these options (kernels < 4.12) errors just come without it.
  int on = 1;
  ::setsockopt(fd_.get(), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
  ::setsockopt(fd_.get(), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
}

template <typename OnReply>
int Rtnl::Transact(Message& m, OnReply on_reply) {
  kernel_message_.clear();
  if (!fd_) return EBADF;
  if (m.overflow()) return EMSGSIZE;
  nlmsghdr* req = m.hdr();
  req->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  req->nlmsg_seq = ++seq_;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = ::sendto(fd_.get(), req, req->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return errno;

  std::vector<char> buf(64 * 1024);
  for (;;) {
    sockaddr_nl from{};
    socklen_t from_len = sizeof from;
    ssize_t n = ::recvfrom(fd_.get(), buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (from.nl_pid != 0) continue;  // only the kernel answers requests
    size_t size = static_cast<size_t>(n);
    for (size_t off = 0; off + sizeof(nlmsghdr) <= size;) {
      const nlmsghdr* h = reinterpret_cast<const nlmsghdr*>(buf.data() + off);
      if (h->nlmsg_len < sizeof(nlmsghdr) || off + h->nlmsg_len > size) return EBADMSG;
      off += NLMSG_ALIGN(h->nlmsg_len);
      if (h->nlmsg_seq != seq_) continue;  // a late answer to an earlier request
      if (h->nlmsg_type == NLMSG_ERROR) return AckError(h, &kernel_message_);
      if (h->nlmsg_type == NLMSG_DONE) {
        // The end of a dump; its payload is the dump's error, if any.
        int err = 0;
        if (h->nlmsg_len >= NLMSG_LENGTH(sizeof err)) std::memcpy(&err, NLMSG_DATA(h), sizeof err);
        return -err;
      }
      on_reply(h);
    }
  }
}

int Rtnl::CreateVeth(const std::string& name, const std::string& peer, int peer_netns_fd) {
  Message m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  m.Put(ifinfomsg{});
  m.AttrString(IFLA_IFNAME, name);
  size_t linkinfo = m.BeginNest(IFLA_LINKINFO);
  m.Attr(IFLA_INFO_KIND, "veth", 4);
  size_t data = m.BeginNest(IFLA_INFO_DATA);
  size_t peer_info = m.BeginNest(VETH_INFO_PEER);
  m.Put(ifinfomsg{});
  m.AttrString(IFLA_IFNAME, peer);
  m.AttrU32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  m.EndNest(peer_info);
  m.EndNest(data);
  m.EndNest(linkinfo);
  return Transact(m, [](const nlmsghdr*) {});
}

int Rtnl::LinkIndex(const std::string& name, int* index) {
  Message m(RTM_GETLINK, 0);
  m.Put(ifinfomsg{});
  m.AttrString(IFLA_IFNAME, name);
  *index = 0;
  int err = Transact(m, [&](const nlmsghdr* h) {
    if (h->nlmsg_type == RTM_NEWLINK && h->nlmsg_len >= NLMSG_LENGTH(sizeof(ifinfomsg))) {
      *index = static_cast<const ifinfomsg*>(NLMSG_DATA(h))->ifi_index;
    }
  });
  if (err == 0 && *index <= 0) return ENODEV;
  return err;
}

int Rtnl::SetLinkUp(int index) {
  Message m(RTM_NEWLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_index = index;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  m.Put(ifi);
  return Transact(m, [](const nlmsghdr*) {});
}

int Rtnl::AddAddress(int index, const IpAddress& address) {
  Message m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  bool v6 = address.family == AF_INET6;
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<unsigned char>(address.family);
  ifa.ifa_prefixlen = static_cast<unsigned char>(address.prefix);
  ifa.ifa_flags = v6 ? IFA_F_NODAD : 0;
  ifa.ifa_scope = RT_SCOPE_UNIVERSE;
  ifa.ifa_index = static_cast<uint32_t>(index);
  m.Put(ifa);
  m.Attr(IFA_LOCAL, address.bytes, AddressLength(address.family));
  m.Attr(IFA_ADDRESS, address.bytes, AddressLength(address.family));
  if (v6) m.AttrU32(IFA_FLAGS, IFA_F_NODAD);
  return Transact(m, [](const nlmsghdr*) {});
}

int Rtnl::AddDefaultRoute(const IpAddress& gateway, int index) {
  Message m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  rtmsg r{};
  r.rtm_family = static_cast<unsigned char>(gateway.family);
  r.rtm_table = RT_TABLE_MAIN;
  r.rtm_protocol = RTPROT_BOOT;
  r.rtm_scope = RT_SCOPE_UNIVERSE;
  r.rtm_type = RTN_UNICAST;
  m.Put(r);
  m.Attr(RTA_GATEWAY, gateway.bytes, AddressLength(gateway.family));
  m.AttrU32(RTA_OIF, static_cast<uint32_t>(index));
  return Transact(m, [](const nlmsghdr*) {});
}

int Rtnl::DeleteLink(const std::string& name) {
  Message m(RTM_DELLINK, 0);
  m.Put(ifinfomsg{});
  m.AttrString(IFLA_IFNAME, name);
  return Transact(m, [](const nlmsghdr*) {});
}

int Rtnl::ListAddresses(std::vector<InterfaceAddress>* out) {
  Message m(RTM_GETADDR, NLM_F_DUMP);
  m.Put(ifaddrmsg{});
  return Transact(m, [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
    const ifaddrmsg* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
    if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return;
    InterfaceAddress entry;
    entry.ifindex = static_cast<int>(ifa->ifa_index);
    entry.address.family = ifa->ifa_family;
    entry.address.prefix = ifa->ifa_prefixlen;
    size_t len = static_cast<size_t>(AddressLength(ifa->ifa_family));
    bool have_local = false, have_any = false;
    size_t start = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(ifaddrmsg)));
    if (start > h->nlmsg_len) return;
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer's on point-to-point links.
    ForEachAttr(reinterpret_cast<const char*>(h) + start, h->nlmsg_len - start, [&](int type, const char* data, size_t n) {
      if (n != len || (type != IFA_LOCAL && type != IFA_ADDRESS) || have_local) return;
      std::memcpy(entry.address.bytes, data, len);
      have_any = true;
      have_local = type == IFA_LOCAL;
    });
    if (have_any) out->push_back(entry);
  });
}

}  // namespace nsjail
