"""A vault's networking: public network access (Allow / Deny), private endpoint connections and their
approval, the DNS names an endpoint answers for, and the network guard on the data path."""
