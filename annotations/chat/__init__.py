"""Chat: announcements and the bot. The IRC wire protocol (`irc_protocol`) and client
(`irc_client`), webhook targets, the notifier that delivers what the writers queued in the
outbox, the lines that say it (`messages`), the bot's read-only commands, and `announce`, which
builds them all from the notify URLs.

May import `annotations.control` (records, the DB, the outbox), `annotations.flags` (the
bot reads flags) and `storage` (units, time parsing) or `aggregator` (the bot's graph
summaries). Neither control nor flags imports chat.
"""
