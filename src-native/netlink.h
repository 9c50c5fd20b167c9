// Parent side: rtnetlink (NETLINK_ROUTE) requests for veth links, addresses and routes,
// without running `ip`. Each request waits for the kernel's acknowledgement and returns 0
// or an errno; the kernel's own explanation (extended ack), if any, is kept for the error.
#pragma once
#include <string>
#include <vector>

#include "unique_fd.h"

namespace nsjail {

// An IP address in network byte order: 4 bytes (AF_INET) or 16 (AF_INET6), with a prefix
// length where one applies.
struct IpAddress {
  int family = 0;
  unsigned char bytes[16] = {};
  int prefix = 0;
};

// One address of an interface (RTM_GETADDR).
struct InterfaceAddress {
  IpAddress address;
  int ifindex = 0;
};

// A NETLINK_ROUTE socket. It acts on the network namespace it was opened in (that of the
// thread that opened it), whichever thread uses it afterwards.
class Rtnl {
 public:
  // Opens a socket in the calling thread's network namespace.
  int Open();
  // Takes over a NETLINK_ROUTE socket opened elsewhere (e.g. by a thread in another netns).
  void Adopt(UniqueFd fd);

  // A veth pair: `name` here, `peer` created directly in the network namespace of
  // `peer_netns_fd` (so it never collides with a name here).
  int CreateVeth(const std::string& name, const std::string& peer, int peer_netns_fd);
  int LinkIndex(const std::string& name, int* index);
  int SetLinkUp(int index);
  // IPv6 addresses are added without duplicate address detection (nodad): usable at once.
  int AddAddress(int index, const IpAddress& address);
  int AddDefaultRoute(const IpAddress& gateway, int index);
  // Deleting either end of a veth pair deletes both.
  int DeleteLink(const std::string& name);
  int ListAddresses(std::vector<InterfaceAddress>* out);

  // The kernel's extended-ack text for the last failed request, or "".
  const std::string& kernel_message() const { return kernel_message_; }

 private:
  class Message;
  // Sends `m` with NLM_F_REQUEST|NLM_F_ACK and reads until its ack (or NLMSG_DONE for a
  // dump); `on_reply` sees every other message answering it.
  template <typename OnReply>
  int Transact(Message& m, OnReply on_reply);

  UniqueFd fd_;
  unsigned seq_ = 0;
  std::string kernel_message_;
};

}  // namespace nsjail
