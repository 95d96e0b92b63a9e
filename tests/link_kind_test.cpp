// Which link types get which build of the TC programs (interfaces.hpp).
#include <gtest/gtest.h>
#include <net/if_arp.h>

#include "nodeport/interfaces.hpp"

namespace nodeport {
namespace {

TEST(LinkKindOf, EthernetGetsTheEthernetBuild) {
    EXPECT_EQ(link_kind_of(ARPHRD_ETHER), LinkKind::ethernet);
}

TEST(LinkKindOf, InterfacesWithoutALinkHeaderGetTheL3Build) {
    // tun and WireGuard, ipip, ip6tnl, sit, GRE, ip6gre, ppp, raw-IP modems
    for (int type : {ARPHRD_NONE, ARPHRD_TUNNEL, ARPHRD_TUNNEL6, ARPHRD_SIT, ARPHRD_IPGRE, 823 /* ip6gre */, ARPHRD_PPP,
                          ARPHRD_RAWIP})
        EXPECT_EQ(link_kind_of(unsigned(type)), LinkKind::l3) << type;
}

TEST(LinkKindOf, OtherLinkTypesGetNone) {
    for (int type : {ARPHRD_INFINIBAND, ARPHRD_CAN, ARPHRD_LOOPBACK, ARPHRD_IEEE80211_RADIOTAP, 824 /* netlink */})
        EXPECT_EQ(link_kind_of(unsigned(type)), std::nullopt) << type;
}

TEST(UnreadableLink, NoSuchInterfaceIsNotRefused) {
    EXPECT_EQ(unreadable_link("np-no-such-if"), std::nullopt);
}

TEST(LinkKind, NamesAsTheCliPrintsThem) {
    EXPECT_EQ(to_string(LinkKind::ethernet), "ethernet");
    EXPECT_EQ(to_string(LinkKind::l3), "l3");
}

}  // namespace
}  // namespace nodeport
