#include "nodeport/datapath_types.hpp"

namespace nodeport {

std::string_view to_string(LinkKind kind) {
    return kind == LinkKind::l3 ? "l3" : "ethernet";
}

std::string_view to_string(TcAttachMode mode) {
    switch (mode) {
    case TcAttachMode::automatic:
        return "auto";
    case TcAttachMode::tcx:
        return "tcx";
    case TcAttachMode::clsact:
        return "clsact";
    }
    return "?";
}

}  // namespace nodeport
