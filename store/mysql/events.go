package mysql

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/hammerwork-go/hw-agent/store"
)

var errEventsNotBuilt = errors.New("mysql: events are being built")

func (s *Store) PutSubscriber(ctx context.Context, p store.PutSubscriberParams) (*store.Subscriber, bool, error) {
	return nil, false, errEventsNotBuilt
}
func (s *Store) GetSubscriber(ctx context.Context, id uuid.UUID) (*store.Subscriber, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) GetSubscriberByName(ctx context.Context, name string) (*store.Subscriber, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) ListSubscribers(ctx context.Context, p store.ListSubscribersParams) (*store.SubscriberPage, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) DeleteSubscriber(ctx context.Context, id uuid.UUID) error { return errEventsNotBuilt }
func (s *Store) PruneSubscribers(ctx context.Context, p store.PruneSubscribersParams) ([]string, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) SequenceEvents(ctx context.Context, p store.SequenceEventsParams) (int, error) {
	return 0, errEventsNotBuilt
}
func (s *Store) ReadEvents(ctx context.Context, p store.ReadEventsParams) ([]store.EventRecord, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) GetEvent(ctx context.Context, id uuid.UUID) (*store.EventRecord, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) LatestSeq(ctx context.Context) (int64, error) { return 0, errEventsNotBuilt }
func (s *Store) ClaimSubscribers(ctx context.Context, p store.ClaimSubscribersParams) ([]*store.Subscriber, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) AckEvents(ctx context.Context, p store.AckEventsParams) error {
	return errEventsNotBuilt
}
func (s *Store) RecordDelivery(ctx context.Context, d store.Delivery) error { return errEventsNotBuilt }
func (s *Store) ListDeliveries(ctx context.Context, p store.ListDeliveriesParams) (*store.DeliveryPage, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) GetDelivery(ctx context.Context, subscriber, id uuid.UUID) (*store.Delivery, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) SubscriberLags(ctx context.Context) ([]store.SubscriberLag, error) {
	return nil, errEventsNotBuilt
}
func (s *Store) CleanupEvents(ctx context.Context, p store.CleanupEventsParams) (int, error) {
	return 0, errEventsNotBuilt
}
