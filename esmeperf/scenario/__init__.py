"""What ESME's users do: organizers start chats, participants arrive and chat."""
