package api

import (
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// getBatch answers GET /v1/batches/{id}: the batch's counters and status,
// and for a collect_errors batch the failed jobs with their errors.
func (s *Server) getBatch(c echo.Context) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	b, err := s.p.Store.GetBatch(c.Request().Context(), id)
	if err != nil {
		return fmt.Errorf("get batch %s: %w", id, err)
	}
	return c.JSON(http.StatusOK, b)
}
