"""SNMP traps and informs: the device says it first (docs/traps.md).

`decode` reads SNMPv1 Trap-PDUs and SNMPv2c Trapv2/Inform PDUs (with the BER codec of
agent.snmp.ber) and builds the acknowledgement of an inform; `catalog` turns a trap into an event
by the trap definitions of the device's profiles; `receiver` listens on UDP, drops what it must
(unknown senders, floods, malformed datagrams), counts it, stores each event in the outbox and
only then acknowledges an inform.
"""
